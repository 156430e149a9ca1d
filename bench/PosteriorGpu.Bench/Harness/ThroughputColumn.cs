using System.Globalization;
using System.Reflection;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace PosteriorGpu.Bench.Harness;

/// <summary>
/// A summary column that divides a benchmark's work (<see cref="IThroughput"/>) by its mean time:
/// GB/s for bytes, GFLOP/s for flops, images/s for images; "-" where the benchmark reports another
/// kind or none.
/// </summary>
public sealed class ThroughputColumn(WorkKind kind) : IColumn
{
    /// <summary>The three columns, in the order they are shown.</summary>
    public static readonly IColumn[] All = [new ThroughputColumn(WorkKind.Bytes), new ThroughputColumn(WorkKind.Flops), new ThroughputColumn(WorkKind.Images)];

    /// <inheritdoc/>
    public string Id => "Throughput." + kind;

    /// <inheritdoc/>
    public string ColumnName => kind switch { WorkKind.Bytes => "GB/s", WorkKind.Flops => "GFLOP/s", _ => "images/s" };

    /// <inheritdoc/>
    public bool AlwaysShow => true;

    /// <inheritdoc/>
    public ColumnCategory Category => ColumnCategory.Custom;

    /// <inheritdoc/>
    public int PriorityInCategory => (int)kind;

    /// <inheritdoc/>
    public bool IsNumeric => true;

    /// <inheritdoc/>
    public UnitType UnitType => UnitType.Dimensionless;

    /// <inheritdoc/>
    public string Legend => kind switch
    {
        WorkKind.Bytes => "Bytes read + written per invocation / mean time, in 10^9 bytes per second",
        WorkKind.Flops => "Floating-point operations per invocation / mean time, in 10^9 per second",
        _ => "Images (batch items) per invocation / mean time, per second",
    };

    /// <inheritdoc/>
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    /// <inheritdoc/>
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        double? meanNs = summary[benchmarkCase]?.ResultStatistics?.Mean;
        var work = WorkOf(benchmarkCase);
        if (meanNs is not > 0 || work is not { } w || w.Kind != kind) return "-";
        double perSecond = w.Amount / (meanNs.Value * 1e-9);
        return (kind == WorkKind.Images ? perSecond : perSecond / 1e9).ToString("G4", CultureInfo.InvariantCulture);
    }

    /// <inheritdoc/>
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    /// <inheritdoc/>
    public bool IsAvailable(Summary summary) =>
        summary.BenchmarksCases.Any(b => WorkOf(b)?.Kind == kind);

    /// <summary>The case's work: a fresh suite instance with the case's parameters, asked by method name.</summary>
    public static Work? WorkOf(BenchmarkCase benchmarkCase)
    {
        var type = benchmarkCase.Descriptor.Type;
        if (!typeof(IThroughput).IsAssignableFrom(type)) return null;
        var suite = (IThroughput)Activator.CreateInstance(type)!;
        foreach (var p in benchmarkCase.Parameters.Items)
        {
            const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance;
            if (type.GetProperty(p.Name, flags) is { CanWrite: true } property) property.SetValue(suite, p.Value);
            else type.GetField(p.Name, flags)?.SetValue(suite, p.Value);
        }
        return suite.WorkOf(benchmarkCase.Descriptor.WorkloadMethod.Name);
    }
}
