using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu;

/// <summary>
/// Posterior samples of many measurements on several devices at once: one <see cref="PosteriorSampler"/> per device
/// (the same model, operator and method on each, e.g. from a <see cref="Kernels.Device.DeviceSet"/>), the chains cut
/// into batches of <see cref="ChainsPerBatch"/> that the devices take from one queue, each device on its own thread.
/// Chain c of a run is sample firstSample + c of the seed's sequence and its batch is fixed by c alone, so the samples
/// are bitwise those of one device running the same batches one after the other (<see cref="PosteriorSampler.Sample(Tensor, Tensor, ulong, long, IProgress{SamplerProgress}?, CancellationToken)"/>
/// with firstSample + the batch's first chain), whichever device ran a batch and in whatever order.
/// </summary>
public sealed class MultiDevicePosteriorSampler
{
    private readonly PosteriorSampler[] samplers;

    /// <summary>Takes one sampler per device; the caller owns them (and their models, operators and devices).</summary>
    /// <exception cref="ArgumentException">No sampler, or the samplers differ in method, image or measurement shape.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="chainsPerBatch"/> is below 1.</exception>
    public MultiDevicePosteriorSampler(IReadOnlyList<PosteriorSampler> samplers, int chainsPerBatch)
    {
        ArgumentNullException.ThrowIfNull(samplers);
        ArgumentOutOfRangeException.ThrowIfLessThan(chainsPerBatch, 1);
        if (samplers.Count == 0) throw new ArgumentException("at least one sampler (one per device) is needed", nameof(samplers));
        var first = samplers[0];
        for (int i = 1; i < samplers.Count; i++)
        {
            var s = samplers[i];
            // Different options on two devices would make a run's samples depend on which device took a batch.
            if (s.Description != first.Description || s.SigmaY != first.SigmaY || s.Model.ImageLength != first.Model.ImageLength ||
                !s.Operator.MeasurementShape.SequenceEqual(first.Operator.MeasurementShape))
                throw new ArgumentException(
                    $"sampler {i} ({s.Description}, sigma_y {s.SigmaY}, operator {s.Operator.Name}) differs from sampler 0 " +
                    $"({first.Description}, sigma_y {first.SigmaY}, operator {first.Operator.Name}); every device must run the same method on the same problem",
                    nameof(samplers));
        }
        this.samplers = [.. samplers];
        ChainsPerBatch = chainsPerBatch;
    }

    /// <summary>The per-device samplers, in device order.</summary>
    public IReadOnlyList<PosteriorSampler> Samplers => samplers;

    /// <summary>Chains per batch: the unit a device takes from the queue (and the batching that fixes the bits).</summary>
    public int ChainsPerBatch { get; }

    /// <summary>Network evaluations per sample (chain), prior draw included.</summary>
    public int EvaluationsPerSample => samplers[0].EvaluationsPerSample;

    /// <summary>
    /// Draws <paramref name="samplesPerMeasurement"/> samples of p(x | y_i) for each measurement y_i of
    /// <paramref name="measurements"/> (their count times the operator's measurement length) into
    /// <paramref name="destination"/> ([M, S, C, H, W] flattened). Chain c = i S + s is sample
    /// <paramref name="firstSample"/> + c of <paramref name="seed"/>'s sequence. <paramref name="batchDone"/> is told of each
    /// finished batch (on the device's thread, one call at a time) once its samples are in <paramref name="destination"/>;
    /// <paramref name="progress"/> gets the merged progress of all devices (one call at a time, never going back).
    /// </summary>
    /// <returns>The finished batches, in chain order.</returns>
    /// <exception cref="ArgumentException">The lengths do not fit the operator and the model.</exception>
    /// <exception cref="DeviceRunException">A device failed; names it and the chains it was running. The other devices
    /// finish the batches they were running and take no new ones; every finished batch is in the destination and in the
    /// exception's <see cref="DeviceRunException.Finished"/>.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled; the finished batches were reported to
    /// <paramref name="batchDone"/> and are in the destination.</exception>
    public IReadOnlyList<ChainBatch> Sample(ReadOnlyMemory<float> measurements, int samplesPerMeasurement, ulong seed, long firstSample,
        Memory<float> destination, IProgress<DeviceSetProgress>? progress = null, Action<ChainBatch>? batchDone = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(samplesPerMeasurement, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(firstSample);
        var shape = samplers[0].Operator.MeasurementShape;
        int m = Shape.Elements(shape), d = samplers[0].Model.ImageLength;
        if (measurements.Length == 0 || measurements.Length % m != 0)
            throw new ArgumentException($"expected measurements of {m} values each {Shape.Format(shape)} but got {measurements.Length} values", nameof(measurements));
        long chains = measurements.Length / m * (long)samplesPerMeasurement;
        if (destination.Length != chains * d)
            throw new ArgumentException($"destination must hold {chains} samples of {d} values ({chains * d}) but holds {destination.Length}", nameof(destination));
        int batches = (int)((chains + ChainsPerBatch - 1) / ChainsPerBatch);
        int evaluations = EvaluationsPerSample;
        var merged = new MergedProgress(progress, samplers.Length, chains * evaluations);

        int next = -1;
        var finished = new List<ChainBatch>();
        var failures = new List<DeviceRunException>();
        bool failed = false;
        void Work(int device)
        {
            var sampler = samplers[device];
            var dev = sampler.Model.Device;
            while (!Volatile.Read(ref failed) && !cancellationToken.IsCancellationRequested)
            {
                int b = Interlocked.Increment(ref next);
                if (b >= batches) return;
                long firstChain = (long)b * ChainsPerBatch;
                int count = (int)Math.Min(ChainsPerBatch, chains - firstChain);
                try
                {
                    var yChains = new float[count * m];
                    for (int j = 0; j < count; j++)
                        measurements.Span.Slice((int)((firstChain + j) / samplesPerMeasurement * m), m).CopyTo(yChains.AsSpan(j * m, m));
                    PosteriorRun run;
                    using (var y = Tensor.FromHost(dev, yChains, [count, .. shape]))
                    using (var x = Tensor.Empty(dev, count, sampler.Model.Channels, sampler.Model.Height, sampler.Model.Width))
                    {
                        run = sampler.Sample(y, x, seed, firstSample + firstChain,
                            new ProgressRelay(p => merged.Running(device, (long)count * p.Step)), cancellationToken);
                        x.CopyTo(destination.Span.Slice((int)(firstChain * d), count * d));
                    }
                    var done = new ChainBatch(b, firstChain, count, device, run);
                    lock (finished)
                    {
                        finished.Add(done);
                        batchDone?.Invoke(done);
                    }
                    merged.Finished(device, (long)count * evaluations);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e)
                {
                    lock (failures)
                        failures.Add(new DeviceRunException(device, dev.Description, firstChain, count, e));
                    // The other devices finish the batch they run (more finished results) but take no new one.
                    Volatile.Write(ref failed, true);
                    return;
                }
            }
        }

        var workers = new Task[samplers.Length];
        for (int i = 0; i < workers.Length; i++)
        {
            int device = i;
            workers[i] = Task.Factory.StartNew(() => Work(device), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
        Task.WaitAll(workers);
        var ordered = finished.OrderBy(f => f.Index).ToList();
        if (failures.Count > 0)
        {
            var first = failures.OrderBy(f => f.FirstChain).First();
            throw first.WithFinished(ordered, batches);
        }
        cancellationToken.ThrowIfCancellationRequested();
        return ordered;
    }

    /// <summary>Sums the devices' progress: finished batches plus each device's running batch, in chain evaluations.</summary>
    private sealed class MergedProgress(IProgress<DeviceSetProgress>? sink, int devices, long total)
    {
        private readonly long[] running = new long[devices];
        private long finished, reported = -1;

        public void Running(int device, long evaluations) => Update(() => running[device] = evaluations);

        public void Finished(int device, long evaluations) => Update(() =>
        {
            running[device] = 0;
            finished += evaluations;
        });

        private void Update(Action change)
        {
            if (sink is null) return;
            lock (running)
            {
                change();
                long done = finished + running.Sum();
                if (done <= reported) return;
                reported = done;
                sink.Report(new DeviceSetProgress(done, total));
            }
        }
    }
}

/// <summary>Progress of a multi-device run: chain network evaluations done of the run's total, over all devices.</summary>
/// <param name="Evaluations">Network evaluations done, summed over chains (finished batches and the running ones).</param>
/// <param name="TotalEvaluations">Chains times network evaluations per chain.</param>
public readonly record struct DeviceSetProgress(long Evaluations, long TotalEvaluations)
{
    /// <summary>The fraction done, in [0, 1].</summary>
    public double Fraction => TotalEvaluations == 0 ? 1 : (double)Evaluations / TotalEvaluations;
}

/// <summary>A finished batch of a multi-device run: chains [FirstChain, FirstChain + Chains) of the run, run by device
/// <paramref name="Device"/> (its index among the samplers).</summary>
/// <param name="Index">The batch's index (chain FirstChain / chains per batch).</param>
/// <param name="FirstChain">The run's index of the batch's first chain.</param>
/// <param name="Chains">Chains in the batch.</param>
/// <param name="Device">Index of the device (sampler) that ran it.</param>
/// <param name="Run">What the method reported about the batch.</param>
public sealed record ChainBatch(int Index, long FirstChain, int Chains, int Device, PosteriorRun Run);
