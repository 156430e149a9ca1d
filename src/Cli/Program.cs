using System.CommandLine;
using PosteriorGpu.Cli;

// POSTERIORGPU_PROFILE=1: each device's per-kernel time table goes to stderr when it is disposed.
PosteriorGpu.Kernels.Device.GpuDevice.ProfileReported += report => Console.Error.Write(report);
return CliApp.RunConsole(args);

namespace PosteriorGpu.Cli
{
    internal static partial class CliApp
    {
        /// <summary>Every command, in the order `posteriorgpu --help` lists them. A new command is one file (a class
        /// with a <c>Create(CommandSetup)</c> method that declares its options and calls a <c>Run(settings, CliContext)</c>)
        /// and one line here.</summary>
        private static readonly Func<CommandSetup, Command>[] Commands =
        [
            PosteriorCommand.Create,
            SampleCommand.Create,
            TrainCommand.Create,
            DevicesCommand.Create,
            EpsCommand.Create,
            BenchCommand.Create,
            PosteriorStudyCommand.Create,
            ConvergenceCommand.Create,
            RobustnessCommand.Create,
            InpaintReferenceCommand.Create,
            DigitsQualityCommand.Create,
            MnistExportCommand.Create,
            TrainClassifierCommand.Create,
            FidCommand.Create,
            PaperFigure4Command.Create,
            TalkComparisonCommand.Create,
            ScaleOutCommands.CreateBatch,
            ScaleOutCommands.CreateMerge,
        ];
    }
}
