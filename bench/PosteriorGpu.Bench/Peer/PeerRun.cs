using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PosteriorGpu.Bench.Models;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Bench.Peer;

/// <summary>
/// Our half of the side-by-side run against PyTorch (bench/gpu/run.sh runs it, then
/// bench/peer/peer_bench.py on the same GPU, then bench/peer/ratios.py): writes the random-weight
/// checkpoints and a check batch (x, t and our epsilon) the peer loads, times the workloads and
/// writes ours.json. Timing is the same on both sides: wall clock around K back-to-back calls
/// ended by a device synchronisation, divided by K, median of R repeats.
/// </summary>
public static class PeerRun
{
    private sealed class Settings
    {
        public string Out = "";
        public HashSet<string> Parts = ["sgemm", "langevin", "unet", "ddpm", "posterior", "dps"];
        public int SgemmSize = 4096;
        public string[] Models = ["S32", "cifar10"];
        public int[] Batches = [1, 64, 256];
        public int LangevinLog2 = 26;
        public int DdpmSteps = 1000, DdpmBatch = 64;
        public int PosteriorLevels = 10, PosteriorStepsPerLevel = 10, PosteriorBatch = 64;
        public int DpsSteps = 100;
        public int Repeats = 7;
    }

    private const string Usage =
        "usage: PosteriorGpu.Bench peer-run --out DIR [--parts sgemm,langevin,unet,ddpm,posterior] [--models S32,cifar10]\n" +
        "       [--sgemm-size 4096]\n" +
        "       [--batches 1,64,256] [--langevin-log2 26] [--ddpm-steps 1000] [--ddpm-batch 64]\n" +
        "       [--posterior-levels 10] [--posterior-steps-per-level 10] [--posterior-batch 64] [--repeats 7]";

    /// <summary>Runs the workloads; returns the exit code (2 for a usage error).</summary>
    public static int Run(string[] args)
    {
        Settings s;
        try
        {
            s = Parse(args);
        }
        catch (FormatException e)
        {
            Console.Error.WriteLine($"peer-run: error: {e.Message}\n{Usage}");
            return 2;
        }
        Directory.CreateDirectory(s.Out);
        using var device = GpuDevice.Open();
        Console.WriteLine($"peer-run on {device.Description}");
        var result = new Dictionary<string, object>
        {
            ["device"] = device.Description,
            ["kind"] = device.Kind.Name(),
            ["method"] = "wall clock over K calls + synchronize, / K, median of R repeats",
        };
        var sw = Stopwatch.StartNew();
        if (device.IsCpu && Environment.GetEnvironmentVariable("POSTERIORGPU_ALLOW_CPU") != "1")
        {
            // Never time the CPU by accident on the GPU machine (bench/gpu/run.sh also asks for CUDA).
            Console.Error.WriteLine($"peer-run: error: the device is {device.Description}, not a GPU; " +
                                    "set POSTERIORGPU_ALLOW_CPU=1 to time the CPU on purpose");
            return 3;
        }
        if (s.Parts.Contains("sgemm")) result["sgemm"] = Sgemm(device, s);
        if (s.Parts.Contains("langevin")) result["langevin"] = Langevin(device, s);
        if (s.Parts.Overlaps(["unet", "ddpm", "posterior", "dps"]))
        {
            var models = new List<object>();
            foreach (string name in (s.Parts.Contains("unet") ? s.Models : []).Union(s.Parts.Overlaps(["ddpm", "posterior", "dps"]) ? ["S32"] : []))
                models.Add(WriteCheckpoint(device, name, s));
            result["models"] = models;
        }
        if (s.Parts.Contains("unet")) result["unet"] = UNetForward(device, s);
        if (s.Parts.Contains("ddpm")) result["ddpm"] = Ddpm(device, s);
        if (s.Parts.Contains("posterior")) result["posterior"] = Posterior(device, s);
        if (s.Parts.Contains("dps")) result["dps"] = Dps(device, s);
        result["seconds"] = sw.Elapsed.TotalSeconds;
        string path = Path.Combine(s.Out, "ours.json");
        File.WriteAllText(path, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"peer-run: wrote {path} ({sw.Elapsed.TotalSeconds:F1} s)");
        return 0;
    }

    private static Settings Parse(string[] args)
    {
        var s = new Settings();
        static int[] Ints(string v) => v.Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        for (int i = 0; i < args.Length; i++)
        {
            string key = args[i];
            if (i + 1 >= args.Length) throw new FormatException($"{key} needs a value");
            string v = args[++i];
            try
            {
                switch (key)
                {
                    case "--out": s.Out = v; break;
                    case "--parts": s.Parts = v.Split(',').ToHashSet(); break;
                    case "--models": s.Models = v.Split(','); break;
                    case "--batches": s.Batches = Ints(v); break;
                    case "--langevin-log2": s.LangevinLog2 = Ints(v)[0]; break;
                    case "--sgemm-size": s.SgemmSize = Ints(v)[0]; break;
                    case "--ddpm-steps": s.DdpmSteps = Ints(v)[0]; break;
                    case "--ddpm-batch": s.DdpmBatch = Ints(v)[0]; break;
                    case "--posterior-levels": s.PosteriorLevels = Ints(v)[0]; break;
                    case "--posterior-steps-per-level": s.PosteriorStepsPerLevel = Ints(v)[0]; break;
                    case "--posterior-batch": s.PosteriorBatch = Ints(v)[0]; break;
                    case "--dps-steps": s.DpsSteps = Ints(v)[0]; break;
                    case "--repeats": s.Repeats = Ints(v)[0]; break;
                    default: throw new FormatException($"unknown option '{key}'");
                }
            }
            catch (OverflowException)
            {
                throw new FormatException($"{key}: '{v}' is out of range");
            }
        }
        if (s.Out == "") throw new FormatException("--out is required");
        foreach (var part in s.Parts)
            if (part is not ("sgemm" or "langevin" or "unet" or "ddpm" or "posterior" or "dps")) throw new FormatException($"unknown part '{part}'");
        foreach (var m in s.Models) UNetArchitectures.ByName(m);
        return s;
    }

    /// <summary>Median over <paramref name="repeats"/> of the per-call time (ms) of <paramref name="calls"/> back-to-back calls.</summary>
    internal static double MedianMs(GpuDevice device, Action call, int calls, int repeats)
    {
        call();
        device.Synchronize();
        var times = new double[repeats];
        for (int r = 0; r < repeats; r++)
        {
            var sw = Stopwatch.StartNew();
            for (int k = 0; k < calls; k++) call();
            device.Synchronize();
            times[r] = sw.Elapsed.TotalMilliseconds / calls;
        }
        Array.Sort(times);
        return times[repeats / 2];
    }

    /// <summary>C = A B for square n x n float32 matrices (n = --sgemm-size): the GEMM core against cuBLAS's SGEMM.</summary>
    private static Dictionary<string, object> Sgemm(GpuDevice device, Settings s)
    {
        int n = s.SgemmSize;
        using var a = Tensor.Zeros(device, n, n);
        using var b = Tensor.Zeros(device, n, n);
        using var c = Tensor.Zeros(device, n, n);
        AddNoise.Run(a, 1f, new RandomDraw(2, 1, 0));
        AddNoise.Run(b, 1f, new RandomDraw(2, 2, 0));
        double ms = MedianMs(device, () => Gemm.Run(a, false, b, false, c), 3, s.Repeats);
        double tflops = 2.0 * n * n * (double)n / (ms * 1e9);
        Console.WriteLine($"  sgemm {n}^3: {ms:F3} ms ({tflops:F2} TFLOP/s)");
        return new() { ["n"] = n, ["ms"] = ms, ["tflops"] = tflops };
    }

    private static Dictionary<string, object> Langevin(GpuDevice device, Settings s)
    {
        int n = 1 << s.LangevinLog2;
        using var x = Tensor.Zeros(device, n);
        using var score = Tensor.Zeros(device, n);
        using var grad = Tensor.Zeros(device, n);
        using var copy = Tensor.Zeros(device, n);
        AddNoise.Run(x, 1f, new RandomDraw(1, 1, 0));
        AddNoise.Run(score, 1f, new RandomDraw(1, 2, 0));
        AddNoise.Run(grad, 1f, new RandomDraw(1, 3, 0));
        ulong step = 0;
        double langevinMs = MedianMs(device, () => LangevinStep.Run(x, score, grad, 1e-4f, new RandomDraw(9, 0, step++)), 10, s.Repeats * 3);
        double copyMs = MedianMs(device, () => copy.CopyFrom(x), 10, s.Repeats * 3);
        double langevinGbs = 16.0 * n / (langevinMs * 1e6), copyGbs = 8.0 * n / (copyMs * 1e6);
        Console.WriteLine($"  langevin update 2^{s.LangevinLog2}: {langevinMs:F4} ms ({langevinGbs:F0} GB/s); copy {copyMs:F4} ms ({copyGbs:F0} GB/s)");
        return new() { ["n"] = n, ["ms"] = langevinMs, ["gbps"] = langevinGbs, ["copy_ms"] = copyMs, ["copy_gbps"] = copyGbs };
    }

    /// <summary>Writes the model's checkpoint under out/NAME and our epsilon on a check batch of two.</summary>
    private static Dictionary<string, object> WriteCheckpoint(GpuDevice device, string name, Settings s)
    {
        var config = UNetArchitectures.ByName(name);
        string folder = Path.Combine(s.Out, name);
        UNetArchitectures.WriteRandomCheckpoint(config, folder, seed: 1);
        using var unet = UNet2DModel.Load(device, folder);
        int size = config.SampleSize!.Value;
        var draw = new RandomDraw(11, 0, 0);
        var x = new float[2 * 3 * size * size];
        for (int i = 0; i < x.Length; i++) x[i] = draw.Normal(i);
        long[] t = [10, 500];
        using var tx = Tensor.FromHost(device, x, 2, 3, size, size);
        using var eps = Tensor.Empty(device, 2, 3, size, size);
        unet.PredictEpsilon(tx, t.Select(v => (float)v).ToArray(), eps);
        Npy.Write(Path.Combine(folder, "check_x.npy"), x, 2, 3, size, size);
        Npy.Write(Path.Combine(folder, "check_t.npy"), t, 2);
        Npy.Write(Path.Combine(folder, "check_eps.npy"), eps.ToHost(), 2, 3, size, size);
        long parameters = UNetArchitectures.ParameterCount(config);
        double flops = UNetArchitectures.ForwardFlops(config);
        Console.WriteLine($"  {name}: {parameters / 1e6:F2} M parameters, {flops / 1e9:F2} GFLOP per image; checkpoint in {folder}");
        return new() { ["name"] = name, ["folder"] = folder, ["parameters"] = parameters, ["flops_per_image"] = flops };
    }

    private static List<object> UNetForward(GpuDevice device, Settings s)
    {
        var rows = new List<object>();
        foreach (string name in s.Models)
        {
            using var unet = UNet2DModel.Load(device, Path.Combine(s.Out, name));
            int size = unet.Height;
            foreach (int b in s.Batches)
            {
                var data = new float[b * 3 * size * size];
                var draw = new RandomDraw(12, 0, 0);
                for (int i = 0; i < data.Length; i++) data[i] = draw.Normal(i);
                var t = Enumerable.Range(0, b).Select(i => (float)(i * 37 % 1000)).ToArray();
                using var x = Tensor.FromHost(device, data, b, 3, size, size);
                using var eps = Tensor.Empty(device, b, 3, size, size);
                double ms = MedianMs(device, () => unet.PredictEpsilon(x, t, eps), b == 1 ? 10 : 3, s.Repeats);
                Console.WriteLine($"  unet {name} batch {b,4}: {ms,9:F3} ms, {b * 1000 / ms,9:F1} images/s");
                rows.Add(new Dictionary<string, object> { ["model"] = name, ["batch"] = b, ["ms"] = ms, ["images_per_s"] = b * 1000 / ms });
            }
        }
        return rows;
    }

    /// <summary>A full DDPM run (one warm-up run of two steps first), end to end: plainly, then with graph replay (issue 21)
    /// from the same start, whose sample must be bitwise the plain one.</summary>
    private static Dictionary<string, object> Ddpm(GpuDevice device, Settings s)
    {
        using var unet = UNet2DModel.Load(device, Path.Combine(s.Out, "S32"));
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        using var x = Tensor.Zeros(device, s.DdpmBatch, 3, 32, 32);
        (double Seconds, float[] Sample, StepLaunchReport? Launches) Time(bool graphReplay)
        {
            var sampler = SamplerFactory.Create("ddpm", unet, schedule);
            sampler.GraphReplay = graphReplay;
            x.Clear();
            AddNoise.Run(x, 1f, new RandomDraw(13, 0, 0));
            sampler.Sample(x, 2 * DiffusionSampler.DefaultDivergenceCheckInterval + 2, 1);   // warm-up (captures a graph when replaying)
            x.Clear();
            AddNoise.Run(x, 1f, new RandomDraw(13, 0, 0));
            device.Synchronize();
            var sw = Stopwatch.StartNew();
            sampler.Sample(x, s.DdpmSteps, 1);
            device.Synchronize();
            return (sw.Elapsed.TotalSeconds, x.ToHost(), sampler.LastStepLaunches);
        }
        return PlainAndReplayed($"ddpm S32 batch {s.DdpmBatch}, {s.DdpmSteps} steps", Time,
            new() { ["model"] = "S32", ["batch"] = s.DdpmBatch, ["steps"] = s.DdpmSteps });
    }

    /// <summary>Times a run plainly, then with graph replay, prints both and adds to <paramref name="row"/> the plain seconds
    /// and the graph_* fields (seconds, steps replayed, nodes, fallback, and whether the samples are bitwise equal).</summary>
    private static Dictionary<string, object> PlainAndReplayed(string what,
        Func<bool, (double Seconds, float[] Sample, StepLaunchReport? Launches)> time, Dictionary<string, object> row)
    {
        var plain = time(false);
        Console.WriteLine($"  {what}: {plain.Seconds:F3} s");
        var replay = time(true);
        bool same = replay.Sample.AsSpan().SequenceEqual(plain.Sample);
        var l = replay.Launches!;
        Console.WriteLine($"  {what}, graph replay: {replay.Seconds:F3} s " +
            $"({l.StepsReplayed} steps replayed in {l.GraphLaunches} launches of {l.NodesPerGraph} nodes{(l.Fallback is { } why ? "; " + why : "")}); " +
            $"bitwise the plain sample: {same}");
        row["seconds"] = plain.Seconds;
        row["graph_seconds"] = replay.Seconds;
        row["graph_steps_replayed"] = l.StepsReplayed;
        row["graph_nodes"] = l.NodesPerGraph;
        row["graph_fallback"] = l.Fallback ?? "";
        row["graph_bitwise_equal"] = same;
        return row;
    }

    /// <summary>Annealed Langevin for random-pixel inpainting from a warm start (levels x steps per level), end to end.</summary>
    private static Dictionary<string, object> Posterior(GpuDevice device, Settings s)
    {
        using var unet = UNet2DModel.Load(device, Path.Combine(s.Out, "S32"));
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        using var op = InpaintingOperator.RandomPixels(device, 3, 32, 32, 0.5, 1);
        int n = s.PosteriorBatch;
        using var start = Tensor.Zeros(device, n, 3, 32, 32);
        AddNoise.Run(start, 0.5f, new RandomDraw(14, 0, 0));
        using var y = Tensor.Zeros(device, [1, .. op.MeasurementShape]);
        using (var truth = start.SliceBatch(0, 1)) op.Forward(truth, y);
        using var x = Tensor.Empty(device, n, 3, 32, 32);
        var options = new AnnealedLangevinOptions { Levels = s.PosteriorLevels, StepsPerLevel = s.PosteriorStepsPerLevel, StepScale = 0.01 };
        x.CopyFrom(start);
        new AnnealedLangevinSampler(unet, schedule, options with { Levels = 1, StepsPerLevel = 1 }).Refine(x, y, op, 0.1f, 2);
        device.Synchronize();
        var sw = Stopwatch.StartNew();
        x.CopyFrom(start);
        new AnnealedLangevinSampler(unet, schedule, options).Refine(x, y, op, 0.1f, 2);
        device.Synchronize();
        double seconds = sw.Elapsed.TotalSeconds;
        int steps = s.PosteriorLevels * s.PosteriorStepsPerLevel;
        Console.WriteLine($"  annealed langevin S32 batch {n}, {steps} steps: {seconds:F3} s");
        return new()
        {
            ["model"] = "S32", ["batch"] = n, ["levels"] = s.PosteriorLevels, ["steps_per_level"] = s.PosteriorStepsPerLevel,
            ["steps"] = steps, ["sigma_y"] = 0.1, ["step_scale"] = 0.01, ["observed"] = 0.5, ["seconds"] = seconds,
        };
    }

    /// <summary>DPS at batch 1 (random-pixel inpainting, the embedding application's case), end to end: plainly, then with
    /// graph replay (issue 21) from the same seed, whose sample must be bitwise the plain one. Ours only: the peer of a graph
    /// replay is our own plain path on the same device. Each is timed after a warm-up run of 2 steps (its kernels load); the
    /// timed graph-replay run includes its own capture.</summary>
    private static Dictionary<string, object> Dps(GpuDevice device, Settings s)
    {
        using var unet = UNet2DModel.Load(device, Path.Combine(s.Out, "S32"), withGradients: true);
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        using var op = InpaintingOperator.RandomPixels(device, 3, 32, 32, 0.5, 1);
        using var truth = Tensor.Zeros(device, 1, 3, 32, 32);
        AddNoise.Run(truth, 0.5f, new RandomDraw(14, 0, 0));
        using var y = Tensor.Zeros(device, [1, .. op.MeasurementShape]);
        op.Forward(truth, y);
        using var x = Tensor.Empty(device, 1, 3, 32, 32);
        (double Seconds, float[] Sample, StepLaunchReport? Launches) Time(bool graphReplay)
        {
            var options = new DpsOptions { Steps = s.DpsSteps, StepSize = 1, GraphReplay = graphReplay };
            new DpsSampler(unet, schedule, options with { Steps = 2 }).Sample(x, y, op, 0.05f, 1);
            var sampler = new DpsSampler(unet, schedule, options);
            device.Synchronize();
            var sw = Stopwatch.StartNew();
            sampler.Sample(x, y, op, 0.05f, 1);
            device.Synchronize();
            return (sw.Elapsed.TotalSeconds, x.ToHost(), sampler.LastStepLaunches);
        }
        return PlainAndReplayed($"dps S32 batch 1, {s.DpsSteps} steps", Time,
            new() { ["model"] = "S32", ["batch"] = 1, ["steps"] = s.DpsSteps, ["task"] = "inpainting, 50 % random pixels" });
    }
}
