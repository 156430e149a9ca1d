using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;
using static PosteriorGpu.Kernels.Gemm.GemmCore;

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// A convolution that also prepares the GroupNorm of its output for the layer that consumes it (a resnet's conv1 for
/// norm2): the per-channel scale/shift table <see cref="Norm.GroupNormTable"/> would compute in a launch of its own.
/// <list type="number">
/// <item>Each block keeps the values it stores (its finished tile, after the epilogue) in shared memory and reduces
/// every row (an output channel over the tile's pixels, all of one image) to its mean and its squared deviations from
/// it: one pair per (image, tile along the pixels, channel), written to a partials buffer.</item>
/// <item>It then takes a ticket from a counter for the whole launch (a device fence first, as split-K does); the block
/// that draws the last one merges the pairs, channel by channel over the tiles (Chan's parallel variance: the
/// within-tile sums plus the tiles' deviations, shifted by the first tile's mean so nothing cancels), then group by
/// group, and writes the table. Same order whichever block is last: the table does not depend on timing.</item>
/// </list>
/// The output is bitwise the plain launch's (the same main loop and epilogue); the table equals GroupNormTable's
/// within rounding (the two-pass statistics in a different order). Served when every tile lies within one image
/// (positions a multiple of the tile's width), the tile is not 128x128 (its shared copy would not fit) and there are
/// at most <see cref="MaxImages"/> images (the merge runs on one block, image by image: this is the batch-1 path).
/// </summary>
internal static class GemmNormStats
{
    /// <summary>At most this many images per launch: beyond, the one merging block would take longer than the table's
    /// own launch (which runs one block per group).</summary>
    internal const int MaxImages = 4;

    /// <summary>The GroupNorm whose table the launch prepares, and where its statistics go (device views).</summary>
    internal struct OutputGroupNorm
    {
        /// <summary>[images, tiles per image, channels] pairs (mean, squared deviations) of each tile's rows.</summary>
        public ArrayView<float> Partials;
        /// <summary>The norm's parameters [C].</summary>
        public ArrayView<float> Gamma, Beta;
        /// <summary>The result: [images, C + CarriedChannels] pairs (scale, shift), as <see cref="Norm.GroupNormTable"/>'s.</summary>
        public ArrayView<float> Table;
        /// <summary>Where the output's per-channel pairs (mean, squared deviations) [images, C] go when Saves is 1.</summary>
        public ArrayView<float> Save;
        /// <summary>Saved pairs [images, CarriedChannels] of the channels that follow the output's in the normalised
        /// concatenation (read only when CarriedChannels > 0).</summary>
        public ArrayView<float> Carried;
        /// <summary>Groups 0: no table (statistics only). Every view is a valid one (an unused one is Partials: a kernel
        /// argument must be a valid view), so flags say which are used.</summary>
        public int Groups, Images, Positions, CarriedChannels, Saves;
        public float Eps;
    }

    /// <summary>Operands whose epilogue can say the value it stores (<see cref="Conv2d.Operands.Final"/>, <see cref="Gemm.Operands.Final"/>).</summary>
    internal interface IFinalValue
    {
        /// <summary>The value Store(b, m, n, acc) writes.</summary>
        float Final(int b, int m, int n, float acc);
    }

    /// <summary>Puts each finished value, after the operands' epilogue, into the block's shared copy of its tile.</summary>
    private readonly struct TileSink<TOps> : ITileSink where TOps : struct, IFinalValue
    {
        private readonly TOps ops;
        private readonly ArrayView<float> tile;
        private readonly int m0, n0, pitch;

        public TileSink(TOps ops, ArrayView<float> tile, int m0, int n0, int pitch)
        {
            this.ops = ops;
            this.tile = tile;
            this.m0 = m0;
            this.n0 = n0;
            this.pitch = pitch;
        }

        public bool Wanted => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Put(int b, int m, int n, float acc) => tile[(m - m0) * pitch + (n - n0)] = ops.Final(b, m, n, acc);
    }

    /// <summary><see cref="GemmCore.Kernel{TTile, TOps}"/> for a convolution, then the statistics of its output and, in the
    /// last block, the following GroupNorm's table. Grid batch 1 (a convolution folds its images into N).</summary>
    internal static void Kernel<TTile, TOps>(TOps ops, Dims d, ArrayView<float> partial, ArrayView<int> tileCounters, OutputGroupNorm norm)
        where TTile : struct, IGemmTile where TOps : struct, IGemmOperands, IFinalValue
    {
        var t = default(TTile);
        var sa4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BM + 4) / 4);
        var sb4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BN + 4) / 4);
        // The finished tile, rows padded by one float so that a thread per row reads without bank conflicts.
        var tile = SharedMemory.Allocate<float>(t.BM * (t.BN + 1));
        var at = Place<TTile>(d);
        Float4 c0l = default, c0h = default, c1l = default, c1h = default, c2l = default, c2h = default, c3l = default, c3h = default;
        Float4 c4l = default, c4h = default, c5l = default, c5h = default, c6l = default, c6h = default, c7l = default, c7h = default;
        Accumulate<TTile, TOps>(ops, at.B, at.M0, at.N0, d.M - 1, d.N - 1, at.KBegin, at.KEnd, sa4, sb4, at.Tid, at.TmIdx, at.TnIdx,
            ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
        var sink = new TileSink<TOps>(ops, tile, at.M0, at.N0, t.BN + 1);
        if (Finish<TTile, TOps, TileSink<TOps>>(ops, d, partial, tileCounters, at.Z, at.B, at.M0, at.N0, at.Tid, at.TmIdx, at.TnIdx, sink,
            c0l, c0h, c1l, c1h, c2l, c2h, c3l, c3h, c4l, c4h, c5l, c5h, c6l, c6h, c7l, c7h))
            Statistics<TTile>(norm, tile, tileCounters, d.M, at.M0, at.N0, at.Tid);
    }

    /// <summary><see cref="GemmCore.KernelSum{TTile, TOps, TOps2}"/> (a resnet's conv2 with its 1x1 shortcut), then as
    /// <see cref="Kernel{TTile, TOps}"/>.</summary>
    internal static void KernelSum<TTile, TOps, TOps2>(TOps ops, TOps2 second, int k1, Dims d, ArrayView<float> partial,
        ArrayView<int> tileCounters, OutputGroupNorm norm)
        where TTile : struct, IGemmTile where TOps : struct, IGemmOperands, IFinalValue where TOps2 : struct, IGemmOperands
    {
        var t = default(TTile);
        var sa4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BM + 4) / 4);
        var sb4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BN + 4) / 4);
        var tile = SharedMemory.Allocate<float>(t.BM * (t.BN + 1));
        var at = Place<TTile>(d);
        Float4 c0l = default, c0h = default, c1l = default, c1h = default, c2l = default, c2h = default, c3l = default, c3h = default;
        Float4 c4l = default, c4h = default, c5l = default, c5h = default, c6l = default, c6h = default, c7l = default, c7h = default;
        Accumulate<TTile, TOps>(ops, at.B, at.M0, at.N0, d.M - 1, d.N - 1, at.KBegin, Math.Min(at.KEnd, k1), sa4, sb4, at.Tid, at.TmIdx, at.TnIdx,
            ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
        Accumulate<TTile, TOps2>(second, at.B, at.M0, at.N0, d.M - 1, d.N - 1, Math.Max(at.KBegin - k1, 0), at.KEnd - k1, sa4, sb4, at.Tid,
            at.TmIdx, at.TnIdx,
            ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
        var sink = new TileSink<TOps>(ops, tile, at.M0, at.N0, t.BN + 1);
        if (Finish<TTile, TOps, TileSink<TOps>>(ops, d, partial, tileCounters, at.Z, at.B, at.M0, at.N0, at.Tid, at.TmIdx, at.TnIdx, sink,
            c0l, c0h, c1l, c1h, c2l, c2h, c3l, c3h, c4l, c4h, c5l, c5h, c6l, c6h, c7l, c7h))
            Statistics<TTile>(norm, tile, tileCounters, d.M, at.M0, at.N0, at.Tid);
    }

    /// <summary>After the block stored its finished tile (also into <paramref name="tile"/>): the tile's row statistics, the
    /// launch ticket, and in the last block the merge into the table.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Statistics<TTile>(OutputGroupNorm norm, ArrayView<float> tile, ArrayView<int> tileCounters, int channels, int m0, int n0,
        int tid) where TTile : struct, IGemmTile
    {
        var t = default(TTile);
        Group.Barrier();
        TileRowStatistics(norm, tile, channels, m0, n0, t.BM, t.BN, tid, t.Threads);
        MemoryFence.DeviceLevel();
        Group.Barrier();
        int ticket = Grid.DimX * Grid.DimY;
        bool last = Group.BarrierOr(tid == 0 && Atomic.Add(ref tileCounters[ticket], 1) == ticket - 1);
        if (!last) return;
        MemoryFence.DeviceLevel();
        MergeIntoTable(norm, tile, channels, t.BN, tid, t.Threads);
        if (tid == 0) tileCounters[ticket] = 0;
    }

    /// <summary>Each row of the tile (one channel over BN pixels of one image, or over all of a single image's positions when
    /// it has fewer than BN): its mean and its squared deviations from it (two passes over the shared copy; the mean summed
    /// as deviations from the row's first value, so that a large mean costs no precision), as the pair of (image, tile,
    /// channel).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TileRowStatistics(OutputGroupNorm norm, ArrayView<float> tile, int channels, int m0, int n0, int bm, int bn,
        int tid, int threads)
    {
        int pitch = bn + 1, width = Math.Min(bn, norm.Positions), tilesPerImage = norm.Positions / width, img = n0 / norm.Positions;
        int slot = img * tilesPerImage + (n0 - img * norm.Positions) / bn;
        for (int r = tid; r < bm && m0 + r < channels; r += threads)
        {
            var row = tile.SubView(r * pitch, bn);
            float first = row[0], sum = 0;
            for (int j = 0; j < width; j += 4) sum += ((row[j] - first) + (row[j + 1] - first)) + ((row[j + 2] - first) + (row[j + 3] - first));
            float mean = first + sum / width, sq = 0;
            for (int j = 0; j < width; j += 4)
            {
                float a = row[j] - mean, b = row[j + 1] - mean, c = row[j + 2] - mean, e = row[j + 3] - mean;
                sq += (a * a + b * b) + (c * c + e * e);
            }
            int o = 2 * (slot * channels + m0 + r);
            norm.Partials[o] = mean;
            norm.Partials[o + 1] = sq;
        }
    }

    /// <summary>The last block: per image, each channel's pairs over the tiles (Chan's merge of equal counts, the tiles'
    /// means taken as deviations from the first tile's) into shared memory (and to <see cref="OutputGroupNorm.Save"/>), the
    /// carried channels' saved pairs after them, then each group's mean and rstd from its channels, then the table.</summary>
    private static void MergeIntoTable(OutputGroupNorm norm, ArrayView<float> shared, int channels, int bn, int tid, int threads)
    {
        int width = Math.Min(bn, norm.Positions), tilesPerImage = norm.Positions / width;
        int total = channels + norm.CarriedChannels, stride = 2 * channels;
        float perChannel = norm.Positions;
        for (int img = 0; img < norm.Images; img++)
        {
            for (int c = tid; c < channels; c += threads)
            {
                int o = 2 * (img * tilesPerImage * channels + c);
                float shift = norm.Partials[o], dev = 0, dev2 = 0, within = 0;
                int i = 0;
                // Four tiles at a time: their loads are independent, so they overlap.
                for (; i + 4 <= tilesPerImage; i += 4)
                {
                    int p = o + i * stride;
                    float d0 = norm.Partials[p] - shift, d1 = norm.Partials[p + stride] - shift;
                    float d2 = norm.Partials[p + 2 * stride] - shift, d3 = norm.Partials[p + 3 * stride] - shift;
                    float q0 = norm.Partials[p + 1], q1 = norm.Partials[p + stride + 1], q2 = norm.Partials[p + 2 * stride + 1], q3 = norm.Partials[p + 3 * stride + 1];
                    dev += (d0 + d1) + (d2 + d3);
                    dev2 += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
                    within += (q0 + q1) + (q2 + q3);
                }
                for (; i < tilesPerImage; i++)
                {
                    float e = norm.Partials[o + i * stride] - shift;
                    dev += e;
                    dev2 += e * e;
                    within += norm.Partials[o + i * stride + 1];
                }
                // Between the tiles: width x the sum over tiles of (mean_t - the channel's mean) ^ 2, from the shifted means.
                float mean = shift + dev / tilesPerImage, m2 = within + width * (dev2 - dev * dev / tilesPerImage);
                shared[2 * c] = mean;
                shared[2 * c + 1] = m2;
                if (norm.Saves != 0)
                {
                    norm.Save[2 * (img * channels + c)] = mean;
                    norm.Save[2 * (img * channels + c) + 1] = m2;
                }
            }
            // The concatenation's other part: its pairs were saved by the launch that made it (same positions per channel).
            for (int c = tid; c < norm.CarriedChannels; c += threads)
            {
                int o = 2 * (img * norm.CarriedChannels + c);
                shared[2 * (channels + c)] = norm.Carried[o];
                shared[2 * (channels + c) + 1] = norm.Carried[o + 1];
            }
            Group.Barrier();
            int perGroup = norm.Groups > 0 ? total / norm.Groups : 0;
            for (int g = tid; g < norm.Groups; g += threads)
            {
                int c0 = g * perGroup;
                // The group's mean as the first channel's plus the mean deviation of the others (no precision lost to a large mean).
                float first = shared[2 * c0], devSum = 0;
                for (int j = 1; j < perGroup; j++) devSum += shared[2 * (c0 + j)] - first;
                float mean = first + devSum / perGroup;
                float m2 = 0;
                for (int j = 0; j < perGroup; j++)
                {
                    float e = shared[2 * (c0 + j)] - mean;
                    m2 += shared[2 * (c0 + j) + 1] + perChannel * e * e;
                }
                float rstd = 1f / MathF.Sqrt(m2 / (perGroup * perChannel) + norm.Eps);
                for (int j = 0; j < perGroup; j++)
                {
                    float scale = rstd * norm.Gamma[c0 + j];
                    int row = img * total + c0 + j;
                    norm.Table[2 * row] = scale;
                    norm.Table[2 * row + 1] = norm.Beta[c0 + j] - mean * scale;
                }
            }
            Group.Barrier();
        }
    }

    /// <summary>Whether a convolution of this plan can prepare its output's GroupNorm (see the class summary): tiles within
    /// one image (whole tiles, or one image narrower than a tile: a 4x4 level at batch 1, its positions a multiple of 4),
    /// not 128x128, at most <see cref="MaxImages"/> images, the merge's pairs (of the normalised tensor's
    /// <paramref name="channels"/>, a concatenation's included) within the tile's shared copy.</summary>
    internal static bool Serves(Plan plan, int channels, int images, int positions) =>
        plan.TileM != 128 && positions > 0 && images is > 0 and <= MaxImages &&
        (positions % plan.TileN == 0 || (images == 1 && positions < plan.TileN && positions % 4 == 0)) &&
        2 * channels <= plan.TileM * (plan.TileN + 1);

    /// <summary>For kernel-report: the tiles the preparing kernels launch with (64x64 and 64x32; 32x32 for a plain GEMM's
    /// operands, which are not im2col), and, for the sum, a resnet's conv2 with its shortcut.</summary>
    internal static bool ServesTypeArguments(Type[] typeArguments) =>
        typeArguments.Length > 0 && (typeArguments[0] == typeof(Tile64x64) || typeArguments[0] == typeof(Tile64x32) ||
                                     (typeArguments[0] == typeof(Tile32x32) && typeArguments.Length == 2 && typeArguments[1] == typeof(Gemm.Operands))) &&
        (typeArguments.Length != 3 || (typeArguments[1] == typeof(Conv2dNormalized.Operands) && typeArguments[2] == typeof(Conv2d.Operands)));

    /// <summary>
    /// Runs the convolution <paramref name="ops"/> (m = Cout, n = images x positions, depth k) into <paramref name="output"/>
    /// and, in the same launch, what <paramref name="request"/> asks of its statistics: the next norm's table
    /// (<paramref name="prepared"/>; null when only statistics were asked) and the saved channel statistics. Returns false,
    /// launching nothing, where the plan does not serve it (<see cref="Serves"/>): the caller then runs the plain launch.
    /// </summary>
    internal static bool TryLaunch<TOps>(string key, TOps ops, int k, Tensor output, OutputNorm request, GemmVariant variant,
        out PreparedGroupNorm? prepared) where TOps : struct, IGemmOperands, IFinalValue
    {
        prepared = null;
        if (Target(output, request, k, variant, ops.Im2Col) is not var (plan, norm, made)) return false;
        var device = output.Device;
        int m = output.C, n = output.N * norm.Positions;
        switch (plan.TileM, plan.TileN)
        {
            case (64, 64): Run<Tile64x64, TOps>(device, key, ops, m, n, k, plan.Splits, norm); break;
            case (64, 32): Run<Tile64x32, TOps>(device, key, ops, m, n, k, plan.Splits, norm); break;
            default: Run<Tile32x32, TOps>(device, key, ops, m, n, k, plan.Splits, norm); break;
        }
        request.Save?.Written(output);
        prepared = made;
        return true;
    }

    /// <summary><see cref="TryLaunch{TOps}"/> for C = A B + A2 B2 (<see cref="GemmCore.LaunchSum{TOps, TOps2}"/>).</summary>
    internal static bool TryLaunchSum<TOps, TOps2>(string key, TOps ops, TOps2 second, int k1, int k2, Tensor output,
        OutputNorm request, GemmVariant variant, out PreparedGroupNorm? prepared)
        where TOps : struct, IGemmOperands, IFinalValue where TOps2 : struct, IGemmOperands
    {
        prepared = null;
        if (Target(output, request, k1 + k2, variant, ops.Im2Col || second.Im2Col) is not var (plan, norm, made)) return false;
        var device = output.Device;
        int m = output.C, n = output.N * norm.Positions;
        switch (plan.TileM, plan.TileN)
        {
            case (64, 64): RunSum<Tile64x64, TOps, TOps2>(device, key, ops, second, k1, m, n, k1 + k2, plan.Splits, norm); break;
            case (64, 32): RunSum<Tile64x32, TOps, TOps2>(device, key, ops, second, k1, m, n, k1 + k2, plan.Splits, norm); break;
            default: return false;   // sums are convolutions: no 32x32 tiles
        }
        request.Save?.Written(output);
        prepared = made;
        return true;
    }

    /// <summary>The plan and the statistics' buffers for <paramref name="request"/> over output, or null when the plan
    /// does not serve it (or nothing is asked).</summary>
    private static (Plan Plan, OutputGroupNorm Norm, PreparedGroupNorm? Prepared)? Target(Tensor output, OutputNorm request, int k,
        GemmVariant variant, bool im2col)
    {
        if (request.IsEmpty) return null;
        var device = output.Device;
        int images = output.N, channels = output.C, positions = output.Length / Math.Max(1, images * channels);
        int carried = request.FollowingChannels;
        var plan = PlanFor(device, variant, channels, images * positions, k, 1, im2col);
        if (!Serves(plan, channels + carried, images, positions)) return null;
        var partials = device.NormStatsPartials(2 * images * (positions / Math.Min(plan.TileN, positions)) * channels);
        var norm = new OutputGroupNorm
        {
            Partials = partials, Images = images, Positions = positions,
            CarriedChannels = carried, Carried = carried > 0 ? request.Following!.Pairs : partials,
            Saves = request.Save is null ? 0 : 1, Save = request.Save?.Reserve(output) ?? partials,
            Gamma = partials, Beta = partials, Table = partials,
        };
        PreparedGroupNorm? prepared = null;
        if (request.Next is { } next)
        {
            var (table, generation) = device.NextPreparedNormTable(2 * images * (channels + carried));
            norm.Gamma = next.Gamma.View;
            norm.Beta = next.Beta.View;
            norm.Table = table;
            norm.Groups = next.Groups;
            norm.Eps = next.Eps;
            prepared = new PreparedGroupNorm(request.Concatenation ?? output, next, table, generation);
        }
        return (plan, norm, prepared);
    }

    private static void Run<TTile, TOps>(GpuDevice device, string key, TOps ops, int m, int n, int k, int splits, OutputGroupNorm norm)
        where TTile : struct, IGemmTile where TOps : struct, IGemmOperands, IFinalValue
    {
        var (dims, config, partial, counters) = Prepare<TTile>(device, m, n, k, 1, splits, launchTicket: true);
        var kernel = device.Kernel(KernelKey<TTile>.Of(key), static acc => acc.LoadStreamKernel<TOps, Dims,
            ArrayView<float>, ArrayView<int>, OutputGroupNorm>(Kernel<TTile, TOps>, GemmTiles.Specialization<TTile>()));
        kernel(config, ops, dims, partial, counters, norm);
    }

    private static void RunSum<TTile, TOps, TOps2>(GpuDevice device, string key, TOps ops, TOps2 second, int k1, int m, int n, int k, int splits,
        OutputGroupNorm norm) where TTile : struct, IGemmTile where TOps : struct, IGemmOperands, IFinalValue where TOps2 : struct, IGemmOperands
    {
        var (dims, config, partial, counters) = Prepare<TTile>(device, m, n, k, 1, splits, launchTicket: true);
        var kernel = device.Kernel(KernelKey<TTile>.Of(key), static acc => acc.LoadStreamKernel<TOps, TOps2, int, Dims,
            ArrayView<float>, ArrayView<int>, OutputGroupNorm>(KernelSum<TTile, TOps, TOps2>, GemmTiles.Specialization<TTile>()));
        kernel(config, ops, second, k1, dims, partial, counters, norm);
    }
}
