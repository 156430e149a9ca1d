using PosteriorGpu.Cli;

return ScaleOutCommands.TryRun(args, Console.Out, Console.Error) ?? CommandLine.Run(args, Console.Out, Console.Error);
