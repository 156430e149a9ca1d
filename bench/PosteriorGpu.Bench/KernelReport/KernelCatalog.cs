using System.Reflection;
using System.Reflection.Emit;
using ILGPU;

namespace PosteriorGpu.Bench.KernelReport;

/// <summary>One kernel entry point of the library, closed over concrete type arguments.</summary>
/// <param name="Name">Declaring type, method and type arguments, e.g. <c>GemmCore.Kernel&lt;Tile128x128, Operands&gt;</c>.</param>
/// <param name="Method">The closed static method ILGPU compiles.</param>
/// <param name="ImplicitlyGrouped">True when the first parameter is an index (launched with LoadAutoGrouped...).</param>
public sealed record KernelEntry(string Name, MethodInfo Method, bool ImplicitlyGrouped);

/// <summary>
/// Finds every kernel of an assembly without a list to maintain: a kernel is a static void method whose
/// address is taken (the <c>ldftn</c> that turns it into the delegate given to ILGPU's Load...Kernel)
/// and that either takes an index first (implicitly grouped) or touches Group/Grid/SharedMemory
/// (explicitly grouped). Generic kernels are closed over every struct of the assembly that satisfies
/// their constraints (each IGemmOperands, each tile configuration, ...), less the combinations the declaring
/// type says it never launches (a static <c>ServesTypeArguments(Type[])</c>).
/// </summary>
public static class KernelCatalog
{
    private static readonly Dictionary<short, OpCode> OpCodes = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    private static readonly HashSet<Type> IndexTypes = [typeof(Index1D), typeof(Index2D), typeof(Index3D), typeof(LongIndex1D)];

    private static readonly HashSet<string> GroupedApi = ["ILGPU.Group", "ILGPU.Grid", "ILGPU.SharedMemory", "ILGPU.Warp"];

    /// <summary>The kernels of <paramref name="assembly"/>, sorted by name.</summary>
    public static IReadOnlyList<KernelEntry> Find(Assembly assembly)
    {
        var targets = new HashSet<MethodInfo>();
        foreach (var type in assembly.GetTypes())
            foreach (var m in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static |
                                              BindingFlags.Instance | BindingFlags.DeclaredOnly))
                foreach (var t in LdftnTargets(m))
                    if (t.Module.Assembly == assembly && t.IsStatic && t.ReturnType == typeof(void))
                        targets.Add(t.IsGenericMethod ? t.GetGenericMethodDefinition() : t);

        var structs = assembly.GetTypes().Where(t => t.IsValueType && !t.IsGenericTypeDefinition && !t.IsEnum).ToList();
        var result = new List<KernelEntry>();
        foreach (var t in targets)
        {
            var ps = t.GetParameters();
            bool implicitly = ps.Length > 0 && IndexTypes.Contains(ps[0].ParameterType);
            if (!implicitly && !UsesGroupedApi(t)) continue;
            foreach (var closed in Close(t, structs))
                result.Add(new KernelEntry(Describe(closed), closed, implicitly));
        }
        return result.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>Closes a generic method over every combination of candidate structs that meets its constraints.</summary>
    private static IEnumerable<MethodInfo> Close(MethodInfo m, List<Type> structs)
    {
        if (!m.IsGenericMethodDefinition) { yield return m; yield break; }
        var options = m.GetGenericArguments()
            .Select(p => structs.Where(s => p.GetGenericParameterConstraints().All(c => c.IsAssignableFrom(s))
                                            && p.GetGenericParameterConstraints().Any(c => c.IsInterface)).ToList())
            .ToList();
        foreach (var combination in Product(options))
        {
            MethodInfo? closed = null;
            try { closed = m.MakeGenericMethod(combination); }
            catch (ArgumentException) { }
            if (closed is not null && Launched(closed)) yield return closed;
        }
    }

    /// <summary>A declaring type may narrow the combinations it launches with a static
    /// <c>ServesTypeArguments(Type[])</c> (the GEMM core: no 32x32 tiles for convolutions).</summary>
    private static bool Launched(MethodInfo closed)
    {
        var filter = closed.DeclaringType?.GetMethod("ServesTypeArguments", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static,
            [typeof(Type[])]);
        return filter is null || (bool)filter.Invoke(null, [closed.GetGenericArguments()])!;
    }

    private static IEnumerable<Type[]> Product(List<List<Type>> options)
    {
        IEnumerable<Type[]> acc = [[]];
        foreach (var o in options)
            acc = acc.SelectMany(prefix => o.Select(t => prefix.Append(t).ToArray())).ToList();
        return acc;
    }

    private static string Describe(MethodInfo m)
    {
        string name = $"{m.DeclaringType!.Name}.{m.Name}";
        if (m.IsGenericMethod)
            name += "<" + string.Join(", ", m.GetGenericArguments().Select(a => a.DeclaringType is { } d ? $"{d.Name}.{a.Name}" : a.Name)) + ">";
        return name;
    }

    private static bool UsesGroupedApi(MethodInfo m) =>
        Calls(m).Any(c => c.DeclaringType?.FullName is { } n && GroupedApi.Contains(n));

    private static IEnumerable<MethodBase> Calls(MethodBase m) => Operands(m, o => o == System.Reflection.Emit.OpCodes.Call.Value || o == System.Reflection.Emit.OpCodes.Callvirt.Value);

    private static IEnumerable<MethodInfo> LdftnTargets(MethodBase m) =>
        Operands(m, o => o == System.Reflection.Emit.OpCodes.Ldftn.Value).OfType<MethodInfo>();

    /// <summary>The methods referenced by the instructions of <paramref name="m"/> whose opcode matches.</summary>
    private static IEnumerable<MethodBase> Operands(MethodBase m, Func<short, bool> wanted)
    {
        byte[]? il;
        try { il = m.GetMethodBody()?.GetILAsByteArray(); }
        catch (Exception) { il = null; }
        if (il is null) yield break;
        var typeArgs = m.DeclaringType?.IsGenericType == true ? m.DeclaringType.GetGenericArguments() : null;
        var methodArgs = m.IsGenericMethod ? m.GetGenericArguments() : null;
        int i = 0;
        while (i < il.Length)
        {
            short value = il[i] == 0xFE && i + 1 < il.Length ? (short)(0xFE00 | il[i + 1]) : il[i];
            if (!OpCodes.TryGetValue(value, out var op)) yield break;
            i += op.Size;
            int operandAt = i;
            i += op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, operandAt),
                _ => 4,
            };
            if (op.OperandType != OperandType.InlineMethod || !wanted(op.Value)) continue;
            MethodBase? target = null;
            try { target = m.Module.ResolveMethod(BitConverter.ToInt32(il, operandAt), typeArgs, methodArgs); }
            catch (Exception) { }
            if (target is not null) yield return target;
        }
    }
}
