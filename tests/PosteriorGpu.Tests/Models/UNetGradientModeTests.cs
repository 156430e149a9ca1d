using NUnit.Framework;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Tests.Training;

namespace PosteriorGpu.Tests.Models;

/// <summary>
/// One U-Net, gradients as a mode: with and without gradients the same weights give bitwise the same
/// epsilon; inference keeps no activations and reuses its pool even after a gradient pass; a folder
/// saved from training loads for inference with the same output; a model without gradients refuses
/// to differentiate with a clear error.
/// </summary>
public class UNetGradientModeTests
{
    private static string Folder => Fixtures.Path("diffusers-unet-tiny");

    /// <summary>Both modes of one architecture: the diffusers fixture, the attention-heavy training config, or
    /// that config class-conditional and centring its input.</summary>
    private static (UNet2DModel Inference, UNet2DModel Gradients) Pair(string which)
    {
        var dev = TestDevices.Cpu;
        if (which == "fixture") return (UNet2DModel.Load(dev, Folder), UNet2DModel.Load(dev, Folder, withGradients: true));
        var config = which == "class+centred"
            ? UNetBackwardTests.Small with { NumClassEmbeds = 3, CenterInputSample = true }
            : UNetBackwardTests.Small;
        return (UNet2DModel.Create(dev, config, seed: 9, withGradients: false),
                UNet2DModel.Create(dev, config, seed: 9, withGradients: true));
    }

    [TestCase("fixture", 1)]
    [TestCase("fixture", 3)]
    [TestCase("attention", 1)]
    [TestCase("attention", 3)]
    [TestCase("class+centred", 3)]
    public void GradientAndInferenceModes_GiveBitwiseEqualEpsilon(string which, int n)
    {
        var dev = TestDevices.Cpu;
        var (inference, gradients) = Pair(which);
        using var _ = inference;
        using var __ = gradients;
        Assert.That(inference.CanDifferentiate, Is.False);
        Assert.That(gradients.CanDifferentiate, Is.True);
        Assert.That(inference.Parameters.Values.ToHost(), Is.EqualTo(gradients.Parameters.Values.ToHost()), "same weights");
        var c = inference.Config;
        int s = c.SampleSize!.Value;
        var xHost = TestData.Random(n * c.InChannels * s * s, 30 + n);
        float[] t = Enumerable.Range(0, n).Select(i => (float)(17 + 331 * i % 1000)).ToArray();
        using var x = Tensor.FromHost(dev, xHost, n, c.InChannels, s, s);
        using var a = Tensor.Empty(dev, x.Shape);
        using var b = Tensor.Empty(dev, x.Shape);
        using var vjpEps = Tensor.Empty(dev, x.Shape);
        using var cotangent = Tensor.FromHost(dev, TestData.Random(xHost.Length, 5), x.Shape);
        using var gradient = Tensor.Empty(dev, x.Shape);
        if (c.NumClassEmbeds is { } classes)
            inference.ClassLabels = gradients.ClassLabels = Enumerable.Range(0, n).Select(i => (i + 1) % classes).ToArray();

        inference.PredictEpsilon(x, t, a);
        gradients.PredictEpsilon(x, t, b);
        var expected = a.ToHost();
        Assert.That(expected.All(float.IsFinite), Is.True);
        Assert.That(b.ToHost(), Is.EqualTo(expected), "gradient-mode forward vs inference, bitwise");
        gradients.EpsilonVjp(x, t, cotangent, vjpEps, gradient);
        Assert.That(vjpEps.ToHost(), Is.EqualTo(expected), "EpsilonVjp's epsilon vs inference, bitwise");
        gradients.GradientsEnabled = false;
        gradients.PredictEpsilon(x, t, b);
        Assert.That(b.ToHost(), Is.EqualTo(expected), "gradients disabled vs inference, bitwise");
    }

    [Test]
    public void InferenceAfterAGradientPass_KeepsNoActivationsAndReusesThePool()
    {
        var dev = TestDevices.Cpu;
        using var inference = UNet2DModel.Load(dev, Folder);
        using var model = UNet2DModel.Load(dev, Folder, withGradients: true);
        using var x = Tensor.FromHost(dev, TestData.Random(2 * 16 * 16, 3), 2, 1, 16, 16);
        using var eps = Tensor.Empty(dev, x.Shape);
        using var dx = Tensor.Empty(dev, x.Shape);
        float[] t = [10f, 500f];

        inference.PredictEpsilon(x, t, eps);
        int inferencePool = inference.PoolAllocations;
        model.PredictEpsilon(x, t, eps);
        model.Backward(eps, dx);
        int gradientPool = model.PoolAllocations;
        // The tape keeps every activation: a recording pass needs far more buffers than an inference pass.
        Assert.That(gradientPool, Is.GreaterThan(2 * inferencePool));

        model.GradientsEnabled = false;
        model.PredictEpsilon(x, t, eps);
        int pooled = model.PoolAllocations;
        long live = dev.LiveBuffers;
        var first = eps.ToHost();
        for (int i = 0; i < 3; i++) model.PredictEpsilon(x, t, eps);
        Assert.That(model.PoolAllocations, Is.EqualTo(pooled), "no new pool buffers over repeated inference calls");
        Assert.That(pooled, Is.EqualTo(gradientPool), "inference reuses the buffers the gradient pass left in the pool");
        Assert.That(dev.LiveBuffers, Is.EqualTo(live), "no device allocation over repeated inference calls");
        Assert.That(eps.ToHost(), Is.EqualTo(first));
        var e = Assert.Throws<InvalidOperationException>(() => model.Backward(eps, dx));
        Assert.That(e!.Message, Does.Contain("GradientsEnabled"), "an inference pass keeps nothing to differentiate");

        // Gradients back on: a recording pass again, and it reuses the pool too.
        model.GradientsEnabled = true;
        model.PredictEpsilon(x, t, eps);
        model.Backward(eps, dx);
        Assert.That(model.PoolAllocations, Is.EqualTo(gradientPool));
    }

    [Test]
    public void FolderSavedFromTraining_LoadsForInferenceWithTheSameOutput()
    {
        var dev = TestDevices.Cpu;
        string dir = Path.Combine(Path.GetTempPath(), "pg-unet-roundtrip-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var net = UNet2DModel.Create(dev, UNetBackwardTests.Small, seed: 4);
            using var x = Tensor.FromHost(dev, TestData.Random(3 * 2 * 8 * 8, 6), 3, 2, 8, 8);
            using var eps = Tensor.Empty(dev, x.Shape);
            using var reloaded = Tensor.Empty(dev, x.Shape);
            float[] t = [1f, 300f, 999f];
            // One plain gradient step, so the saved weights are trained ones, not the seed's initialisation.
            net.PredictEpsilon(x, t, eps);
            net.Backward(eps);
            Axpby.Run(-0.05f, net.Parameters.Gradients!, 1f, net.Parameters.Values);
            net.PredictEpsilon(x, t, eps);
            net.Save(dir);

            using var model = UNet2DModel.Load(dev, dir);
            Assert.That(model.CanDifferentiate, Is.False);
            Assert.That(model.Config, Is.EqualTo(net.Config));
            Assert.That(model.Parameters.Values.ToHost(), Is.EqualTo(net.Parameters.Values.ToHost()));
            model.PredictEpsilon(x, t, reloaded);
            Assert.That(reloaded.ToHost(), Is.EqualTo(eps.ToHost()), "saved from training, loaded for inference: bitwise the same epsilon");
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Test]
    public void ModelWithoutGradients_RefusesToDifferentiate_AndDpsSaysHowToLoad()
    {
        var dev = TestDevices.Cpu;
        using var model = UNet2DModel.Load(dev, Folder);
        using var x = Tensor.Zeros(dev, 1, 1, 16, 16);
        using var eps = Tensor.Empty(dev, x.Shape);
        using var g = Tensor.Empty(dev, x.Shape);
        var vjp = Assert.Throws<InvalidOperationException>(() => model.EpsilonVjp(x, [5f], x, eps, g));
        Assert.That(vjp!.Message, Does.Contain("withGradients: true"));
        Assert.Throws<InvalidOperationException>(() => model.GradientsEnabled = true);
        Assert.Throws<InvalidOperationException>(() => model.Backward(eps, g));
        Assert.That(model.Parameters.Gradients, Is.Null, "no gradient buffer without gradients");

        var schedule = NoiseSchedule.FromConfig(new SchedulerConfig { ClipSample = false });
        var dps = Assert.Throws<ArgumentException>(() => new DpsSampler(model, schedule));
        Assert.That(dps!.Message, Does.Contain("without gradients").And.Contain("withGradients: true"));
        using var differentiable = UNet2DModel.Load(dev, Folder, withGradients: true);
        Assert.DoesNotThrow(() => new DpsSampler(differentiable, schedule));
    }

    [Test]
    public void ScaleShift_LoadsForInference_AndNamesTheFieldWithGradients()
    {
        var dev = TestDevices.Cpu;
        const string field = "resnet_time_scale_shift";
        var config = UNetBackwardTests.Small with { ResnetTimeScaleShift = "scale_shift", NumClassEmbeds = 3 };
        string dir = Path.Combine(Path.GetTempPath(), "pg-unet-nograd-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var net = UNet2DModel.Create(dev, config, seed: 2, withGradients: false)) net.Save(dir);
            using var model = UNet2DModel.Load(dev, dir);
            using var x = Tensor.FromHost(dev, TestData.Random(2 * 8 * 8, 8), 1, 2, 8, 8);
            using var eps = Tensor.Empty(dev, x.Shape);
            model.Forward(x, [40f], [2], eps);
            Assert.That(eps.ToHost().All(float.IsFinite), Is.True);

            var load = Assert.Throws<NotSupportedException>(() => UNet2DModel.Load(dev, dir, withGradients: true));
            Assert.That(load!.Message, Does.Contain(field).And.Contain("withGradients: false"));
            var create = Assert.Throws<NotSupportedException>(() => UNet2DModel.Create(dev, config));
            Assert.That(create!.Message, Does.Contain(field));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Test]
    public void ParameterLayout_IsTheLoadedModelsLayout_WithoutADevice()
    {
        var config = UNet2DConfig.Load(Path.Combine(Folder, "config.json"));
        var layout = UNet2DModel.ParameterLayout(config);
        using var model = UNet2DModel.Load(TestDevices.Cpu, Folder);
        Assert.That(layout.Select(p => p.Name), Is.EqualTo(model.Parameters.Parameters.Select(p => p.Name)));
        Assert.That(layout.Select(p => p.Shape), Is.EqualTo(model.Parameters.Parameters.Select(p => p.Shape)));
        var file = SafeTensorsFile.Read(Path.Combine(Folder, UNet2DModel.WeightsFileName));
        Assert.That(layout.Select(p => p.Name), Is.EquivalentTo(file.Names), "every tensor of diffusers' checkpoint, no other");
        Assert.That(UNet2DModel.ParameterLayout(UNetBackwardTests.Small with { NumClassEmbeds = 4 }).Select(p => p.Name),
            Does.Contain("class_embedding.weight"));
    }
}
