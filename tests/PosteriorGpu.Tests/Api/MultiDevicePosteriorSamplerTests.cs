using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Tests.Cli;
using PosteriorGpu.Tests.Reliability;

namespace PosteriorGpu.Tests.Api;

/// <summary>
/// <see cref="MultiDevicePosteriorSampler"/> on several CPU accelerators in one process (each its own ILGPU context and
/// accelerator, as GPUs would be), with a tiny random U-Net: the samples are bitwise those of one device running the
/// same batches, progress is merged, and a device that fails names itself and keeps the finished batches.
/// </summary>
public class MultiDevicePosteriorSamplerTests
{
    private const int Side = 32, D = Side * Side, Measurements = 3, SamplesEach = 2, PerBatch = 2;
    private static readonly AnnealedLangevinOptions Quick = AnnealedLangevinOptions.Image32 with { Levels = 2, StepsPerLevel = 1, PriorSteps = 2 };
    private string dir = "", model = "";

    [OneTimeSetUp]
    public void WriteModel()
    {
        dir = Directory.CreateTempSubdirectory("multi-device-").FullName;
        model = Path.Combine(dir, "model");
        RandomUNet.Write(RandomUNet.Tiny32, model);
    }

    [OneTimeTearDown]
    public void DeleteDir() => Directory.Delete(dir, recursive: true);

    /// <summary>A sampler on one device: the model and the operator live there; disposing frees both.</summary>
    private sealed class OnDevice : IDisposable
    {
        public readonly DiffusionModel Model;
        public readonly InpaintingOperator Operator;
        public readonly PosteriorSampler Sampler;

        public OnDevice(GpuDevice dev, string folder, Func<DiffusionModel, DiffusionModel>? wrap = null)
        {
            Model = DiffusionModel.Load(dev, folder);
            Operator = InpaintingOperator.RandomPixels(dev, 1, Side, Side, 0.25, 0);
            Sampler = new PosteriorSampler(wrap?.Invoke(Model) ?? Model, Operator, 0.05f, Quick);
        }

        public void Dispose()
        {
            Operator.Dispose();
            Model.Dispose();
        }
    }

    private float[] MeasurementsOf(PosteriorSampler sampler)
    {
        var y = new List<float>();
        for (int i = 0; i < Measurements; i++) y.AddRange(sampler.Measure(TestData.Random(D, 20 + i, 0.9f), seed: 1, index: i));
        return [.. y];
    }

    /// <summary>The single-device answer: the plain facade on the shared CPU device, the same batches one after the other.</summary>
    private float[] Reference(float[] y, ulong seed, long firstSample)
    {
        using var one = new OnDevice(TestDevices.Cpu, model);
        var dev = TestDevices.Cpu;
        int chains = Measurements * SamplesEach, m = y.Length / Measurements;
        var result = new float[chains * D];
        for (int first = 0; first < chains; first += PerBatch)
        {
            int k = Math.Min(PerBatch, chains - first);
            var yc = new float[k * m];
            for (int j = 0; j < k; j++) y.AsSpan((first + j) / SamplesEach * m, m).CopyTo(yc.AsSpan(j * m));
            using var yt = Tensor.FromHost(dev, yc, [k, .. one.Operator.MeasurementShape]);
            using var x = Tensor.Empty(dev, k, 1, Side, Side);
            one.Sampler.Sample(yt, x, seed, firstSample + first);
            x.CopyTo(result.AsSpan(first * D, k * D));
        }
        return result;
    }

    [Test]
    public void ThreeDevices_GiveBitwiseTheSingleDeviceSamples_AndMergeProgress()
    {
        using var set = DeviceSet.Open(DeviceKind.Cpu, 3);
        Assert.That(set.Count, Is.EqualTo(3));
        Assert.That(set.Distinct().Count(), Is.EqualTo(3), "three independent devices");
        var parts = set.Select(d => new OnDevice(d, model)).ToList();
        try
        {
            var multi = new MultiDevicePosteriorSampler(parts.Select(p => p.Sampler).ToList(), PerBatch);
            var y = MeasurementsOf(parts[0].Sampler);
            var samples = new float[Measurements * SamplesEach * D];
            var reports = new List<DeviceSetProgress>();
            var told = new List<ChainBatch>();
            var batches = multi.Sample(y, SamplesEach, seed: 9, firstSample: 5, samples,
                new SyncProgress<DeviceSetProgress>(reports.Add), told.Add);

            Assert.That(batches.Select(b => b.FirstChain), Is.EqualTo(new long[] { 0, 2, 4 }));
            Assert.That(told.Select(b => b.Index).Order(), Is.EqualTo(new[] { 0, 1, 2 }), "each finished batch reported once");
            TestContext.Out.WriteLine($"batches per device: {string.Join(", ", batches.Select(b => b.Device))}");
            Assert.That(batches.Select(b => b.Device).Distinct().Count(), Is.GreaterThan(1), "the work was shared");
            Assert.That(samples.All(float.IsFinite));
            Assert.That(samples, Is.EqualTo(Reference(y, 9, 5)), "bitwise the single-device samples");

            long total = (long)Measurements * SamplesEach * multi.EvaluationsPerSample;
            Assert.That(reports, Is.Not.Empty);
            Assert.That(reports.Last(), Is.EqualTo(new DeviceSetProgress(total, total)));
            Assert.That(reports.Select(r => r.Evaluations), Is.Ordered.Ascending, "merged progress never goes back");
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    [Test]
    public void AFailingDevice_FailsTheRun_NamingIt_AndKeepsTheFinishedBatches()
    {
        using var set = DeviceSet.Open(DeviceKind.Cpu, 2);
        var healthy = new OnDevice(set[0], model);
        // Device 1's network throws on its third call: in its first batch, after the prior draw started.
        var broken = new OnDevice(set[1], model, m => new DiffusionModel(new FaultyModel(m.Network, 3, Fault.Throw), m.Schedule));
        try
        {
            var multi = new MultiDevicePosteriorSampler([healthy.Sampler, broken.Sampler], chainsPerBatch: 1);
            var y = MeasurementsOf(healthy.Sampler);
            var samples = new float[Measurements * SamplesEach * D];
            var e = Assert.Throws<DeviceRunException>(() => multi.Sample(y, SamplesEach, seed: 9, firstSample: 5, samples))!;
            TestContext.Out.WriteLine(e.Message);
            Assert.That(e.Device, Is.EqualTo(1));
            Assert.That(e.Message, Does.StartWith($"device 1 ({set[1].Description}) failed on chains"));
            Assert.That(e.Message, Does.Contain("faulty model: call 3 failed"));
            Assert.That(e.InnerException, Is.InstanceOf<InvalidOperationException>());
            Assert.That(e.Finished, Is.Not.Empty, "device 0 finishes the batch it was running");
            Assert.That(e.Finished.All(b => b.Device == 0));

            // Every finished batch holds the single-device samples (chains per batch 1 here, so compare per chain).
            var reference = ReferencePerChain(y);
            foreach (var b in e.Finished)
                Assert.That(samples.AsSpan((int)b.FirstChain * D, D).ToArray(), Is.EqualTo(reference.AsSpan((int)b.FirstChain * D, D).ToArray()),
                    $"chain {b.FirstChain}");
        }
        finally
        {
            healthy.Dispose();
            broken.Dispose();
        }
    }

    private float[] ReferencePerChain(float[] y)
    {
        using var one = new OnDevice(TestDevices.Cpu, model);
        var multi = new MultiDevicePosteriorSampler([one.Sampler], chainsPerBatch: 1);
        var result = new float[Measurements * SamplesEach * D];
        multi.Sample(y, SamplesEach, seed: 9, firstSample: 5, result);
        return result;
    }

    [Test]
    public void MismatchedSamplers_AreRefused()
    {
        using var set = DeviceSet.Open(DeviceKind.Cpu, 2);
        using var a = new OnDevice(set[0], model);
        using var modelB = DiffusionModel.Load(set[1], model);
        using var opB = InpaintingOperator.RandomPixels(set[1], 1, Side, Side, 0.25, 0);
        var b = new PosteriorSampler(modelB, opB, 0.05f, Quick with { Levels = 3 });
        var e = Assert.Throws<ArgumentException>(() => new MultiDevicePosteriorSampler([a.Sampler, b], 2))!;
        Assert.That(e.Message, Does.Contain("sampler 1").And.Contain("every device must run the same method"));
    }

    [Test]
    public void DeviceSet_OpensEveryDeviceOfAKind_OrTheCountAsked()
    {
        using (var all = DeviceSet.OpenAll(DeviceKind.Cpu))
        {
            Assert.That(all.Count, Is.EqualTo(1), "the CPU accelerator once: it already uses every core");
            Assert.That(all.Describe(0), Does.StartWith("device 0 of 1 (cpu: "));
        }
        using (var two = DeviceSet.OpenAll(DeviceKind.Cpu, maxCount: 1)) Assert.That(two.Count, Is.EqualTo(1));
        Assert.That(() => DeviceSet.Open(DeviceKind.Cpu, 0), Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => GpuDevice.Open(DeviceKind.Cpu, 1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("there are 1 cpu device(s)"));
        if (GpuDevice.Count(DeviceKind.Cuda) == 0)
            Assert.That(() => DeviceSet.OpenAll(DeviceKind.Cuda), Throws.InvalidOperationException.With.Message.Contains("'cuda' was requested"));
    }

    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
