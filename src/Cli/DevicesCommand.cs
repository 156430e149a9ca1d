using Spectre.Console;
using System.CommandLine;
using System.Globalization;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu devices`: the accelerators ILGPU finds, in the order they are chosen, with memory that means
/// something for each kind (a GPU's own memory; for ILGPU's CPU accelerator, which reports a placeholder of 2^63 bytes,
/// the host's RAM that it shares), and the one a command would use.</summary>
internal static class DevicesCommand
{
    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(DeviceKind? device, CliContext cli)
    {
        var table = new Table().AddColumn("kind").AddColumn("name").AddColumn("memory").AddColumn(new TableColumn("max threads/group").RightAligned());
        foreach (var d in GpuDevice.List())
            table.AddRow(d.Kind.Name(), Markup.Escape(d.Name), Markup.Escape(Memory(d)), d.MaxThreadsPerGroup.ToString(CultureInfo.InvariantCulture));
        cli.OutConsole.Write(table);
        string? env = Environment.GetEnvironmentVariable(DeviceKinds.EnvironmentVariable);
        using var chosen = GpuDevice.Open(device);
        cli.Out.WriteLine($"chosen: {chosen.Description}" + (string.IsNullOrEmpty(env) ? "" : $" ({DeviceKinds.EnvironmentVariable}={env})"));
        return ExitCodes.Ok;
    }

    /// <summary>The memory column: MiB of device memory for a GPU; for the CPU accelerator the host's RAM it shares.</summary>
    public static string Memory(DeviceInfo d) => d.Kind == DeviceKind.Cpu
        ? $"shared with host ({HostMemoryBytes() / (1024.0 * 1024 * 1024):F1} GiB RAM)".Replace(',', '.')
        : $"{d.MemoryBytes / (1024 * 1024)} MiB";

    /// <summary>The memory the runtime may use on this machine (RAM, or a container's limit).</summary>
    public static long HostMemoryBytes() => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>The `devices` command's glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var command = new Command("devices", "list the accelerators ILGPU finds, in the order they are chosen, and the one that would be chosen");
        command.SetAction(p => Run(setup.DeviceOf(p), setup.Context));
        return command;
    }
}
