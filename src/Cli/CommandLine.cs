using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Cli;

/// <summary>The `posteriorgpu` command: dispatches subcommands, turns failures into one-line errors.</summary>
internal static class CommandLine
{
    private const string Usage = """
        usage: posteriorgpu <command> [options]

        commands:
          posterior            posterior samples for an inverse problem on images (default: inpainting MNIST test digits
                               with the shipped model), writing grid.png and metrics.json:
                                 [--task inpaint|superres|deblur|cs|mri|phase|onebit] [--sampler dps|annealed-langevin|dpnp|dps-langevin|lgd-mc]
                                 [--model DIR] [--input digits.npy|a.png,b.png] [--invert] [--count 4] [--samples 4]
                                 [--sigma-y 0.05] [--steps 16] [--levels 4] [--prior-steps 8] [--seed S] [--batch INPUTS]
                                 [--mask random|box|half] [--factor 4] [--blur-sigma 2] [--ratio R] [--operator-seed S]
                                 [--step-scale S] (DPS zeta: 3, cs and onebit 1; annealed Langevin 0.5) [--prior-timestep 50] [--eta-max 1]
                                 (annealed Langevin) [--out out/posterior]
          devices              list the accelerators ILGPU finds, in the order they are chosen
          eps                  run a diffusers UNet2DModel checkpoint on saved inputs:
                                 --model DIR --x x.npy --t t.npy --out eps.npy
          sample               unconditional samples: --model DIR --sampler ddpm|ddim|pf-ode|li-accelerated|dpmsolver++2m
                                 --steps N [--scheduler-config FILE] [--xT x.npy] [--seed S] [--batch B] [--eta E] --out x0.npy [--png grid.png]
          bench                time the U-Net forward pass and one DDIM sampler step: --model DIR [--batch 1,16] [--iters 10]
          posterior-study      posterior samplers on Gaussian-mixture priors vs exact samples (sliced W2):
                                 [--dims 8,80] [--rows 1,2,4] [--chains 4096] [--levels 20] [--steps-per-level 50]
                                 [--samplers dpnp,dps|none] [--dpnp-iterations 50] [--dps-steps 100] [--dps-zeta 0.3]
          convergence          the samplers' error against an exact answer and their order: [--steps 10,20,40,80]
          train                denoising score matching on MNIST: --out DIR [--config config.json] [--steps N]
                                 [--batch B] [--lr LR] [--seed S] [--resume] [--limit N] [--mnist DIR]
          digits-quality       mean nearest-neighbour distance of MNIST samples to the test set, beside real and noise
                                 images: --samples x.npy [--real 200] [--mnist DIR]
          inpaint-reference    PSNR on the missing pixels of an inpainting run's posterior mean beside the mean of the k
                                 MNIST training images nearest on the observed pixels: --run DIR [--k 16] [--mnist DIR]
          fid                  FID of MNIST samples in the features of the shipped classifier: --samples x.npy
                                 [--reference test|train-split|ref.npy] [--classifier models/mnist-classifier] [--mnist DIR]
          train-classifier     train the FID classifier on MNIST: --out DIR [--epochs 3] [--batch 64] [--lr 0.003] [--seed S]
                                 [--limit N] [--resume] [--mnist DIR]
          mnist-export         MNIST images (from tools/fetch-mnist) padded to 32 x 32 in [-1, 1] as .npy:
                                 [--split test|train] [--indices 0-15] [--mnist DIR] --out x.npy [--png grid.png]
          robustness           plain vs annealed Langevin with an exact and a perturbed score (Xun, Gupta, Price, Figure 3):
                                 [--dims 1,64] [--chains 4096] [--bound 1000] [--levels 100] [--steps-per-level 10]

        options:
          --device cuda|opencl|cpu   pick the device (default: POSTERIORGPU_DEVICE, else CUDA, OpenCL, CPU)
          --verbose                  print stack traces on errors
        """;

    /// <summary>Runs the command; returns the process exit code.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        bool verbose = args.Contains("--verbose");
        try
        {
            if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
            {
                stdout.WriteLine(Usage);
                return args.Length == 0 ? 2 : 0;
            }
            return args[0] switch
            {
                "devices" => Devices(stdout),
                "posterior" => PosteriorCommand.Run(new Options("posterior", args.Skip(1), PosteriorCommand.Known, [.. PosteriorCommand.Flags, "verbose"]), stdout, stderr),
                "eps" => EpsCommand.Run(new Options("eps", args.Skip(1), EpsCommand.Known, "verbose"), stdout),
                "bench" => BenchCommand.Run(new Options("bench", args.Skip(1), BenchCommand.Known, "verbose"), stdout),
                "sample" => SampleCommand.Run(new Options("sample", args.Skip(1), SampleCommand.Known, "verbose"), stdout, stderr),
                "posterior-study" => PosteriorStudyCommand.Run(new Options("posterior-study", args.Skip(1), PosteriorStudyCommand.Known, "verbose"), stdout),
                "robustness" => RobustnessCommand.Run(new Options("robustness", args.Skip(1), RobustnessCommand.Known, "verbose"), stdout),
                "convergence" => ConvergenceCommand.Run(new Options("convergence", args.Skip(1), ConvergenceCommand.Known, "verbose"), stdout),
                "train" => TrainCommand.Run(new Options("train", args.Skip(1), TrainCommand.Known, "verbose", "resume"), stdout, CancelOnCtrlC()),
                "digits-quality" => DigitsQualityCommand.Run(new Options("digits-quality", args.Skip(1), DigitsQualityCommand.Known, "verbose"), stdout),
                "inpaint-reference" => InpaintReferenceCommand.Run(new Options("inpaint-reference", args.Skip(1), InpaintReferenceCommand.Known, "verbose"), stdout),
                "train-classifier" => TrainClassifierCommand.Run(new Options("train-classifier", args.Skip(1), TrainClassifierCommand.Known, "verbose", "resume"), stdout),
                "fid" => FidCommand.Run(new Options("fid", args.Skip(1), FidCommand.Known, "verbose"), stdout),
                "mnist-export" => MnistExportCommand.Run(new Options("mnist-export", args.Skip(1), MnistExportCommand.Known, "verbose"), stdout),
                _ => throw new UsageException($"unknown command '{args[0]}'; run 'posteriorgpu --help' for the list"),
            };
        }
        catch (Exception e) when (!verbose)
        {
            stderr.WriteLine($"posteriorgpu: error: {e.Message}");
            return e is UsageException ? 2 : 1;
        }
    }

    /// <summary>A token that Ctrl-C cancels (instead of killing the process), so long runs can stop cleanly.</summary>
    private static CancellationToken CancelOnCtrlC()
    {
        var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };
        return cts.Token;
    }

    private static int Devices(TextWriter stdout)
    {
        var list = GpuDevice.List();
        foreach (var d in list) stdout.WriteLine(d);
        string? env = Environment.GetEnvironmentVariable(DeviceKinds.EnvironmentVariable);
        using var chosen = GpuDevice.Open();
        stdout.WriteLine($"chosen: {chosen.Description}" + (string.IsNullOrEmpty(env) ? "" : $" ({DeviceKinds.EnvironmentVariable}={env})"));
        return 0;
    }
}

/// <summary>A mistake in the command line; exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
