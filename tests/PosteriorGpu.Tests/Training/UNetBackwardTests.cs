using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Tests.Backward;

namespace PosteriorGpu.Tests.Training;

/// <summary>UNet2DModel with gradients: the same forward as inference, a saved folder that loads back, and a
/// backward pass that matches finite differences.</summary>
public class UNetBackwardTests
{
    private static string Folder => Fixtures.Path("diffusers-unet-tiny");

    /// <summary>Two attention placements, two layers per block (several skips per block), an
    /// asymmetric downsampler, a scaled mid block whose attention has no group norm.</summary>
    internal static UNet2DConfig Small => new()
    {
        SampleSize = 8,
        InChannels = 2,
        OutChannels = 2,
        BlockOutChannels = [8, 12],
        LayersPerBlock = 2,
        NormNumGroups = 4,
        AttentionHeadDim = 4,
        DownBlockTypes = ["AttnDownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "AttnUpBlock2D"],
        DownsamplePadding = 0,
        MidBlockScaleFactor = 1.4142135,
        ResnetTimeScaleShift = "default",
        AttnNormNumGroups = null,
    };

    [Test]
    public void Fixture_MatchesDiffusersAndTheInferenceModel()
    {
        var dev = TestDevices.Cpu;
        var x = Npy.Read(Path.Combine(Folder, "x.npy"));
        var t = Npy.Read(Path.Combine(Folder, "t.npy")).ToInt64().Select(v => (float)v).ToArray();
        var expected = Npy.Read(Path.Combine(Folder, "eps.npy")).ToFloat32();
        using var tx = Tensor.FromHost(dev, x.ToFloat32(), x.Shape);
        using var eps = Tensor.Empty(dev, x.Shape);
        using var reference = Tensor.Empty(dev, x.Shape);
        using (var net = UNet2DModel.Load(dev, Folder, withGradients: true)) net.PredictEpsilon(tx, t, eps);
        using (var model = UNet2DModel.Load(dev, Folder)) model.PredictEpsilon(tx, t, reference);
        var got = eps.ToHost();
        TestData.AssertClose(got, expected, 1e-4, "unet with gradients vs diffusers eps.npy");
        TestData.AssertClose(got, reference.ToHost(), 1e-6, "unet with gradients vs UNet2DModel");
    }

    [Test]
    public void SavedFolder_LoadsInUNet2DModelWithTheSameOutput()
    {
        var dev = TestDevices.Cpu;
        string dir = Path.Combine(Path.GetTempPath(), "pg-unet-save-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var net = UNet2DModel.Create(dev, Small, seed: 3);
            using var x = Tensor.FromHost(dev, TestData.Random(3 * 2 * 8 * 8, 1), 3, 2, 8, 8);
            using var a = Tensor.Empty(dev, x.Shape);
            using var b = Tensor.Empty(dev, x.Shape);
            net.PredictEpsilon(x, [1f, 300f, 999f], a);
            net.Save(dir);
            using var model = UNet2DModel.Load(dev, dir);
            model.PredictEpsilon(x, [1f, 300f, 999f], b);
            TestData.AssertClose(b.ToHost(), a.ToHost(), 1e-6, "reloaded");
            using var again = UNet2DModel.Load(dev, dir, withGradients: true);
            again.PredictEpsilon(x, [1f, 300f, 999f], b);
            TestData.AssertClose(b.ToHost(), a.ToHost(), 1e-7, "reloaded with gradients");
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Test]
    public void UnsupportedConfig_IsAClearError()
    {
        var e = Assert.Throws<NotSupportedException>(() => UNet2DModel.Create(TestDevices.Cpu, Small with { ResnetTimeScaleShift = "scale_shift" }));
        Assert.That(e!.Message, Does.Contain("scale_shift"));
    }

    /// <summary>The backward pass of the whole network against finite differences of its forward pass,
    /// along random directions in input space and in weight space ("centred": center_input_sample, whose
    /// 2 x - 1 scales the input gradient; "class": a class embedding, whose rows get the items' gradients).</summary>
    [TestCase("small")]
    [TestCase("centred")]
    [TestCase("class")]
    [TestCase("fixture")]
    public void Backward_MatchesFiniteDifferences(string which)
    {
        var dev = TestDevices.Cpu;
        using var net = which switch
        {
            "small" => UNet2DModel.Create(dev, Small, seed: 5),
            "centred" => UNet2DModel.Create(dev, Small with { CenterInputSample = true }, seed: 5),
            "class" => UNet2DModel.Create(dev, Small with { NumClassEmbeds = 3 }, seed: 5),
            _ => UNet2DModel.Load(dev, Folder, withGradients: true),
        };
        int c = net.Config.InChannels, s = net.Config.SampleSize!.Value, n = 2;
        if (which == "class") net.ClassLabels = [2, 0];
        var xHost = TestData.Random(n * c * s * s, 11);
        var dy = TestData.Random(xHost.Length, 12);
        float[] t = [17f, 640f];
        using var x = Tensor.FromHost(dev, xHost, n, c, s, s);
        using var y = Tensor.Empty(dev, x.Shape);
        using var dOut = Tensor.FromHost(dev, dy, x.Shape);
        using var dx = Tensor.Empty(dev, x.Shape);
        net.PredictEpsilon(x, t, y);
        net.Backward(dOut, dx);
        var gradX = dx.ToHost();
        var gradW = net.Parameters.Gradients!.ToHost();
        var weights = net.Parameters.Values.ToHost();

        float[] ForwardX()
        {
            x.CopyFrom(xHost);
            net.PredictEpsilon(x, t, y);
            return y.ToHost();
        }
        float[] ForwardW()
        {
            net.Parameters.Values.CopyFrom(weights);
            net.PredictEpsilon(x, t, y);
            return y.ToHost();
        }
        Gradients.AssertMatchesFiniteDifferences($"{which} dL/dx", ForwardX, xHost, gradX, dy, eps: 1e-2f, tolerance: 1e-2);
        x.CopyFrom(xHost);
        Gradients.AssertMatchesFiniteDifferences($"{which} dL/dweights", ForwardW, weights, gradW, dy, eps: 3e-4f, tolerance: 1e-2);

        // Every parameter receives a gradient (none is left out of the backward pass).
        foreach (var p in net.Parameters.Parameters)
        {
            double norm = 0;
            for (int i = 0; i < p.Length; i++) norm += Math.Abs(gradW[p.Offset + i]);
            Assert.That(norm, Is.GreaterThan(0), $"{p.Name} got no gradient");
        }
    }
}
