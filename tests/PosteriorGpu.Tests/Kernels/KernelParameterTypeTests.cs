using System.Reflection;
using ILGPU;
using NUnit.Framework;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>
/// No kernel takes a double, directly or inside a parameter struct. The GPU contexts compile with
/// MathMode.Fast32BitOnly, which turns a kernel's doubles into floats, its parameter structs' fields included, while
/// the host still lays the arguments out with doubles: on an H200 the Metropolis accept kernel, whose constants were
/// doubles, failed its launch with CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES (2026-12-04). The CPU accelerator runs the IL as
/// it is, so no CPU test sees it; this one does. Kernels are found as in the kernel report: static void methods of
/// the library that take an ILGPU index first or an ArrayView anywhere.
/// </summary>
public class KernelParameterTypeTests
{
    [Test]
    public void NoKernelParameterHoldsADouble()
    {
        var assembly = typeof(GpuDevice).Assembly;
        var kernels = assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Where(m => m.ReturnType == typeof(void) && m.GetParameters().Any(p => IsView(p.ParameterType)))
            .ToList();
        Assert.That(kernels, Has.Count.GreaterThan(50), "the scan finds the kernels");
        var offenders = new List<string>();
        foreach (var m in kernels)
            foreach (var p in m.GetParameters())
                if (HoldsDouble(p.ParameterType, []))
                    offenders.Add($"{m.DeclaringType!.Name}.{m.Name}({p.ParameterType.Name} {p.Name})");
        Assert.That(offenders, Is.Empty, "kernel parameters holding a double (Fast32BitOnly makes them floats on a GPU)");
    }

    private static bool IsView(Type t) => t.IsGenericType && t.GetGenericTypeDefinition().FullName!.StartsWith("ILGPU.ArrayView");

    private static bool HoldsDouble(Type t, HashSet<Type> seen)
    {
        if (t == typeof(double)) return true;
        if (!t.IsValueType || t.IsPrimitive || t.IsEnum || !seen.Add(t)) return false;
        if (t.Namespace is { } ns && ns.StartsWith("ILGPU")) return false;   // views, indices: ILGPU's own layouts
        return t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic).Any(f => HoldsDouble(f.FieldType, seen));
    }
}
