using System.Diagnostics;
using NUnit.Framework;
using PosteriorGpu.Tests.Posterior;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Reliability;

/// <summary>
/// Resources: an allocation that does not fit is a clear error (bytes asked and free) that leaves the
/// device usable; a run stopped at any step (cancelled, failed, diverged) returns every device buffer;
/// 10,000 steps grow neither device nor host memory; runs from two threads on one device give exactly
/// what they give alone (the device serializes runs: <see cref="GpuDevice.Exclusive"/>).
/// </summary>
public class ResourceTests
{
    private const int Side = 4, D = Side * Side;

    private static GpuDevice Dev => TestDevices.Cpu;

    [Test]
    public void AnAbsurdAllocation_IsAClearError_AndTheDeviceStaysUsable()
    {
        using var prior = CheapPriors.Gaussian(Dev);
        var before = Ddim(prior, 5);
        long live = Dev.LiveBuffers;
        var ex = Assert.Throws<InsufficientDeviceMemoryException>(() => Dev.Allocate(1L << 42));
        TestContext.Out.WriteLine(ex!.Message);
        Assert.That(ex.RequestedBytes, Is.EqualTo(4L << 42));
        Assert.That(ex.FreeBytes, Is.Not.Null.And.LessThan(ex.RequestedBytes));
        Assert.That(ex.Message, Does.Contain("asked for 16777216.0 MiB").And.Contain("MiB free").And.Contain("smaller batch"));
        Assert.That(Dev.LiveBuffers, Is.EqualTo(live));
        Assert.That(Ddim(prior, 5), Is.EqualTo(before), "the device still samples, bitwise as before");
    }

    [Test]
    public void ABatchTooLargeForTheDevice_FailsCleanly_AndTheSameRunWorksWhenItFits()
    {
        using var prior = CheapPriors.Gaussian(Dev);
        const int batch = 1 << 14;   // x is 1 MiB; a run needs about as much again
        var start = TestData.Random(batch * D, 3);
        using var x = Tensor.FromHost(Dev, start, batch, 1, Side, Side);
        long live = Dev.LiveBuffers;
        Dev.MemoryLimitBytes = Dev.LiveBytes + 512 * 1024;
        try
        {
            var ex = Assert.Throws<InsufficientDeviceMemoryException>(() => new DdimSampler(prior, CheapPriors.Schedule).Sample(x, 3, 1));
            TestContext.Out.WriteLine(ex!.Message);
            Assert.That(ex.Message, Does.Contain("asked for 1.0 MiB, 0.5 MiB free of").And.Contain("MemoryLimitBytes"));
            Assert.That(Dev.LiveBuffers, Is.EqualTo(live), "the failed run returned what it had");
            Assert.That(x.ToHost(), Is.EqualTo(start), "x untouched");
            Assert.Throws<InsufficientDeviceMemoryException>(() => Tensor.Empty(Dev, batch, 1, Side, Side));
            using var pool = new TensorPool(Dev);
            Assert.Throws<InsufficientDeviceMemoryException>(() => pool.Rent(batch, 1, Side, Side));
            Assert.That((pool.Outstanding, pool.Allocations), Is.EqualTo((0, 0)), "a failed rent leaves the pool as it was");
        }
        finally
        {
            Dev.MemoryLimitBytes = null;
        }
        new DdimSampler(prior, CheapPriors.Schedule).Sample(x, 3, 1);
        Assert.That(x.ToHost().All(float.IsFinite));
    }

    private static float[] Ddim(IScoreModel model, int steps, ulong seed = 1, int batch = 2)
    {
        using var x = Tensor.FromHost(Dev, TestData.Random(batch * D, 2), batch, 1, Side, Side);
        new DdimSampler(model, CheapPriors.Schedule, eta: 1).Sample(x, steps, seed);
        return x.ToHost();
    }

    // ---- stopping at any step returns every buffer ----

    /// <summary>A run of a sampler on a model, given a cancellation token; extend with new samplers.</summary>
    public sealed record RunCase(string Name, Action<IScoreModel, CancellationToken> Run)
    {
        /// <inheritdoc/>
        public override string ToString() => Name;
    }

    private static readonly AnnealedLangevinOptions Short = new() { Levels = 2, StepsPerLevel = 3, PriorSteps = 3, StepScale = 0.3 };

    private static void Langevin(IScoreModel model, CancellationToken ct, bool local)
    {
        using var op = new CompressedSensingOperator(Dev, [1, Side, Side], 5, seed: 2);
        using var y = Tensor.FromHost(Dev, TestData.Random(5, 3), 1, 5);
        using var x = Tensor.Empty(Dev, 2, 1, Side, Side);
        var sampler = new AnnealedLangevinSampler(model, CheapPriors.Schedule, Short);
        if (!local) sampler.Sample(x, y, op, 0.1f, seed: 3, cancellationToken: ct);
        else
        {
            using var tilde = Tensor.FromHost(Dev, TestData.Random(D, 4), 1, 1, Side, Side);
            sampler.SampleLocal(x, y, op, 0.1f, tilde, 0.3f, seed: 3, cancellationToken: ct);
        }
    }

    public static IEnumerable<RunCase> RunCases()
    {
        foreach (var name in SamplerFactory.Names.Append("ddpm-large"))
            yield return new RunCase(name, (model, ct) =>
            {
                using var x = Tensor.FromHost(Dev, TestData.Random(2 * D, 5), 2, 1, Side, Side);
                SamplerFactory.Create(name, model, CheapPriors.Schedule).Sample(x, 4, 1, cancellationToken: ct);
            });
        yield return new RunCase("ddim-sample-from", (model, ct) =>
        {
            using var x = Tensor.FromHost(Dev, TestData.Random(2 * D, 5), 2, 1, Side, Side);
            new DdimSampler(model, CheapPriors.Schedule).SampleFrom(x, [300, 200, 100], 1, cancellationToken: ct);
        });
        yield return new RunCase("annealed-langevin", (model, ct) => Langevin(model, ct, local: false));
        yield return new RunCase("annealed-langevin-local", (model, ct) => Langevin(model, ct, local: true));
    }

    [TestCaseSource(nameof(RunCases))]
    public void StoppingAtAnyStep_ReturnsEveryBuffer(RunCase run)
    {
        using var prior = CheapPriors.Gaussian(Dev);
        var counter = new FaultyModel(prior, int.MaxValue, Fault.NaN);
        run.Run(counter, default);   // also fills the caches that outlive runs (the prior's pool, the scratch area)
        int calls = counter.Calls;
        long live = Dev.LiveBuffers, bytes = Dev.LiveBytes;
        Assert.That(calls, Is.GreaterThan(2));
        for (int k = 1; k <= calls; k++)
        {
            if (k < calls)   // cancelled during the last call, the run has nothing left to stop
            {
                using var cts = new CancellationTokenSource();
                int stopAt = k;
                var cancelling = new FaultyModel(prior, int.MaxValue, Fault.NaN) { OnCall = c => { if (c == stopAt) cts.Cancel(); } };
                Assert.Throws<OperationCanceledException>(() => run.Run(cancelling, cts.Token), $"cancelled at call {k}");
                Assert.That(cancelling.Calls, Is.EqualTo(k), "stops before the next model call");
                Assert.That((Dev.LiveBuffers, Dev.LiveBytes), Is.EqualTo((live, bytes)), $"{run.Name}: buffers after cancelling at call {k} of {calls}");
            }

            Assert.Throws<InvalidOperationException>(() => run.Run(new FaultyModel(prior, k, Fault.Throw), default));
            Assert.That((Dev.LiveBuffers, Dev.LiveBytes), Is.EqualTo((live, bytes)), $"{run.Name}: buffers after the model threw at call {k}");

            Assert.Throws<SamplerDivergedException>(() => run.Run(new FaultyModel(prior, k, Fault.NaN) { PoisonInput = true }, default));
            Assert.That((Dev.LiveBuffers, Dev.LiveBytes), Is.EqualTo((live, bytes)), $"{run.Name}: buffers after diverging at call {k}");
        }
    }

    [Test]
    public void StoppingTheUNetAtAnyStep_ReturnsEveryBuffer()
    {
        using var model = PosteriorGpu.Models.UNet.UNet2DModel.Load(Dev, Fixtures.Path("diffusers-unet-tiny"));
        void Run(IScoreModel m, CancellationToken ct)
        {
            using var x = Tensor.FromHost(Dev, TestData.Random(256, 5), 1, 1, 16, 16);
            new DdpmSampler(m, CheapPriors.Schedule).Sample(x, 3, 1, cancellationToken: ct);
        }
        Run(model, default);
        long live = Dev.LiveBuffers;
        for (int k = 1; k <= 3; k++)
        {
            using var cts = new CancellationTokenSource();
            int stopAt = k;
            if (k < 3)
                Assert.Throws<OperationCanceledException>(() => Run(new FaultyModel(model, int.MaxValue, Fault.NaN) { OnCall = c => { if (c == stopAt) cts.Cancel(); } }, cts.Token));
            Assert.Throws<InvalidOperationException>(() => Run(new FaultyModel(model, k, Fault.Throw), default));
            Assert.Throws<SamplerDivergedException>(() => Run(new FaultyModel(model, k, Fault.NaN), default));
            Assert.That(Dev.LiveBuffers, Is.EqualTo(live), $"after stopping at step {k}");
        }
    }

    // ---- long runs ----

    private readonly record struct Usage(long Buffers, long DeviceBytes, long HostBytes);

    private static Usage Measure() => new(Dev.LiveBuffers, Dev.LiveBytes, GC.GetTotalMemory(forceFullCollection: true));

    [Test]
    public void TenThousandLangevinSteps_GrowNeitherDeviceNorHostMemory()
    {
        using var prior = CheapPriors.Gaussian(Dev);
        using var op = new CompressedSensingOperator(Dev, [1, Side, Side], 5, seed: 2);
        using var y = Tensor.FromHost(Dev, TestData.Random(5, 3), 1, 5);
        using var warm = Tensor.FromHost(Dev, TestData.Random(2 * D, 4), 2, 1, Side, Side);
        using var x = Tensor.Empty(Dev, 2, 1, Side, Side);
        Usage early = default, late = default;
        long allocatedEarly = 0, allocatedLate = 0;
        var model = new FaultyModel(prior, int.MaxValue, Fault.NaN)
        {
            OnCall = call =>
            {
                if (call == 1000) { early = Measure(); allocatedEarly = GC.GetAllocatedBytesForCurrentThread(); }
                if (call == 10_000) { late = Measure(); allocatedLate = GC.GetAllocatedBytesForCurrentThread(); }
            },
        };
        var options = new AnnealedLangevinOptions { Levels = 100, StepsPerLevel = 100, StepScale = 0.3 };
        new AnnealedLangevinSampler(prior, CheapPriors.Schedule, options with { Levels = 1, StepsPerLevel = 1 }).RefineFrom(x, y, op, 0.1f, seed: 5, warmStart: warm);
        long liveBefore = Dev.LiveBuffers;
        var clock = Stopwatch.StartNew();
        new AnnealedLangevinSampler(model, CheapPriors.Schedule, options).RefineFrom(x, y, op, 0.1f, seed: 5, warmStart: warm);
        TestContext.Out.WriteLine($"10,000 Langevin steps in {clock.Elapsed.TotalSeconds:F1} s; at step 1,000: {early}; at step 10,000: {late}; " +
                                  $"host bytes allocated per step (garbage) {(allocatedLate - allocatedEarly) / 9000.0:F0}");
        Assert.That(model.Calls, Is.EqualTo(10_000));
        Assert.That((late.Buffers, late.DeviceBytes), Is.EqualTo((early.Buffers, early.DeviceBytes)), "device memory");
        Assert.That(late.HostBytes - early.HostBytes, Is.LessThan(256 * 1024), "managed heap after a full collection");
        Assert.That(Dev.LiveBuffers, Is.EqualTo(liveBefore), "everything returned at the end");
        Assert.That(x.ToHost().All(float.IsFinite));
    }

    [Test]
    public void AHundredRuns_GrowNeitherDeviceNorHostMemory()
    {
        // Each run makes and frees its own pool; the prior's pool and the device scratch outlive runs.
        using var prior = CheapPriors.Gaussian(Dev);
        using var x = Tensor.Empty(Dev, 2, 1, Side, Side);
        var start = TestData.Random(2 * D, 6);
        Usage early = default;
        for (int run = 0; run < 100; run++)
        {
            if (run == 10) early = Measure();
            x.CopyFrom(start);
            SamplerFactory.Create(SamplerFactory.Names[run % SamplerFactory.Names.Count], prior, CheapPriors.Schedule).Sample(x, 20, (ulong)run);
        }
        var late = Measure();
        TestContext.Out.WriteLine($"after 10 runs: {early}; after 100 runs of 20 steps: {late}");
        Assert.That((late.Buffers, late.DeviceBytes), Is.EqualTo((early.Buffers, early.DeviceBytes)), "device memory");
        Assert.That(late.HostBytes - early.HostBytes, Is.LessThan(256 * 1024), "managed heap after a full collection");
    }

    // ---- two threads, one device ----

    [Test]
    public void RunsFromTwoThreadsOnOneDevice_GiveWhatTheyGiveAlone()
    {
        // One model shared by both threads: its buffer pool and the device's scratch area would be raced
        // over if the runs were not serialized.
        using var prior = CheapPriors.Gaussian(Dev);
        using var op = new CompressedSensingOperator(Dev, [1, Side, Side], 5, seed: 2);
        using var y = Tensor.FromHost(Dev, TestData.Random(5, 3), 1, 5);
        float[] Ddpm(ulong seed)
        {
            using var x = Tensor.FromHost(Dev, TestData.Random(8 * D, 7), 8, 1, Side, Side);
            new DdpmSampler(prior, CheapPriors.Schedule).Sample(x, 60, seed);
            return x.ToHost();
        }
        float[] Langevin(ulong seed)
        {
            using var x = Tensor.Empty(Dev, 8, 1, Side, Side);
            new AnnealedLangevinSampler(prior, CheapPriors.Schedule, Short with { StepsPerLevel = 20, PriorSteps = 20 }).Sample(x, y, op, 0.1f, seed);
            return x.ToHost();
        }
        var alone = new[] { Ddpm(1), Ddpm(2), Langevin(3) };
        for (int round = 0; round < 1; round++)
        {
            using var gate = new Barrier(3);
            var tasks = new[] { Task.Run(() => { gate.SignalAndWait(); return Ddpm(1); }), Task.Run(() => { gate.SignalAndWait(); return Ddpm(2); }),
                                Task.Run(() => { gate.SignalAndWait(); return Langevin(3); }) };
            Assert.That(Task.WaitAll(tasks, TimeSpan.FromSeconds(120)), "no deadlock");
            for (int i = 0; i < 3; i++) Assert.That(tasks[i].Result, Is.EqualTo(alone[i]), $"round {round}, run {i}");
        }
    }

    [Test]
    public void UNetRunsFromTwoThreads_GiveWhatTheyGiveAlone()
    {
        // The network's activation pool and GroupNorm's use of the device scratch area are shared state.
        using var model = PosteriorGpu.Models.UNet.UNet2DModel.Load(Dev, Fixtures.Path("diffusers-unet-tiny"));
        float[] Ddpm(ulong seed)
        {
            using var x = Tensor.FromHost(Dev, TestData.Random(2 * 256, 8), 2, 1, 16, 16);
            new DdpmSampler(model, CheapPriors.Schedule).Sample(x, 4, seed);
            return x.ToHost();
        }
        var alone = new[] { Ddpm(1), Ddpm(2) };
        using var gate = new Barrier(2);
        var tasks = new[] { Task.Run(() => { gate.SignalAndWait(); return Ddpm(1); }), Task.Run(() => { gate.SignalAndWait(); return Ddpm(2); }) };
        Assert.That(Task.WaitAll(tasks, TimeSpan.FromSeconds(120)), "no deadlock");
        Assert.That(tasks[0].Result, Is.EqualTo(alone[0]));
        Assert.That(tasks[1].Result, Is.EqualTo(alone[1]));
    }

    [Test]
    public void ARunWaitingForTheDevice_CanBeCancelled()
    {
        using var prior = CheapPriors.Gaussian(Dev);
        using var cts = new CancellationTokenSource();
        Task<float[]> waiting;
        using (Dev.Exclusive())
        {
            waiting = Task.Run(() =>
            {
                using var x = Tensor.FromHost(Dev, TestData.Random(2 * D, 2), 2, 1, Side, Side);
                new DdimSampler(prior, CheapPriors.Schedule).Sample(x, 5, 1, cancellationToken: cts.Token);
                return x.ToHost();
            });
            Assert.That(waiting.Wait(300), Is.False, "the run waits while the device is held");
            cts.Cancel();
            var clock = Stopwatch.StartNew();
            var ex = Assert.Throws<AggregateException>(() => waiting.Wait(TimeSpan.FromSeconds(10)));
            Assert.That(ex!.InnerException, Is.InstanceOf<OperationCanceledException>());
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)), "cancelled promptly while waiting");
        }
        Assert.That(Ddim(prior, 5), Is.EqualTo(Ddim(prior, 5)), "the device is free again");
    }
}
