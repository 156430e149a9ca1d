using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// A convolution that also prepares the GroupNorm of its output for the layer that consumes it (a resnet's conv1 for
/// norm2): the per-channel scale/shift table <see cref="Norm.GroupNormTable"/> would compute in a launch of its own.
/// <list type="number">
/// <item>Each block keeps the values it stores (its finished tile, after the epilogue) in shared memory and reduces
/// every row (an output channel over the tile's pixels, all of one image) to its sum and its squared deviations from
/// the row's own mean: one pair per (image, tile along the pixels, channel), written to a partials buffer.</item>
/// <item>It then takes a ticket from a counter for the whole launch (a device fence first, as split-K does); the block
/// that draws the last one merges the pairs, channel by channel over the tiles (Chan's parallel variance: the
/// within-tile sums plus the tiles' deviations, shifted by the first tile's sum so nothing cancels), then group by
/// group, and writes the table. Same order whichever block is last: the table does not depend on timing.</item>
/// </list>
/// The output is bitwise the plain launch's (the same main loop and epilogue); the table equals GroupNormTable's
/// within rounding (the two-pass statistics in a different order). Served when every tile lies within one image
/// (positions a multiple of the tile's width), the tile is not 128x128 (its shared copy would not fit) and there are
/// at most <see cref="MaxImages"/> images (the merge runs on one block, image by image: this is the batch-1 path).
/// </summary>
internal static partial class GemmCore
{
    /// <summary>At most this many images per launch: beyond, the one merging block would take longer than the table's
    /// own launch (which runs one block per group).</summary>
    internal const int MaxImages = 4;

    /// <summary>The GroupNorm whose table the launch prepares, and where its statistics go (device views).</summary>
    internal struct OutputGroupNorm
    {
        /// <summary>[images, tiles per image, channels] pairs (sum, squared deviations) of each tile's rows.</summary>
        public ArrayView<float> Partials;
        /// <summary>The norm's parameters [C].</summary>
        public ArrayView<float> Gamma, Beta;
        /// <summary>The result: [images, C] pairs (scale, shift), as <see cref="Norm.GroupNormTable"/>'s.</summary>
        public ArrayView<float> Table;
        public int Groups, Images, Positions;
        public float Eps;
    }

    /// <summary>Puts each finished value, after the convolution's epilogue, into the block's shared copy of its tile.</summary>
    private readonly struct ConvTileSink : ITileSink
    {
        private readonly Conv2d.Operands conv;
        private readonly ArrayView<float> tile;
        private readonly int m0, n0, pitch;

        public ConvTileSink(Conv2d.Operands conv, ArrayView<float> tile, int m0, int n0, int pitch)
        {
            this.conv = conv;
            this.tile = tile;
            this.m0 = m0;
            this.n0 = n0;
            this.pitch = pitch;
        }

        public bool Wanted => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Put(int b, int m, int n, float acc) => tile[(m - m0) * pitch + (n - n0)] = conv.Final(b, m, n, acc);
    }

    /// <summary><see cref="Kernel{TTile, TOps}"/> for a normalised convolution, then the statistics of its output and, in
    /// the last block, the following GroupNorm's table. Grid batch 1 (a convolution folds its images into N).</summary>
    internal static void KernelNormStats<TTile>(Conv2dNormalized.Operands ops, Dims d, ArrayView<float> partial, ArrayView<int> tileCounters,
        OutputGroupNorm norm) where TTile : struct, IGemmTile
    {
        var t = default(TTile);
        var sa4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BM + 4) / 4);
        var sb4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BN + 4) / 4);
        // The finished tile, rows padded by one float so that a thread per row reads without bank conflicts.
        var tile = SharedMemory.Allocate<float>(t.BM * (t.BN + 1));
        var at = Place<TTile>(d);
        int tid = at.Tid, m0 = at.M0, n0 = at.N0;
        Float4 c0l = default, c0h = default, c1l = default, c1h = default, c2l = default, c2h = default, c3l = default, c3h = default;
        Float4 c4l = default, c4h = default, c5l = default, c5h = default, c6l = default, c6h = default, c7l = default, c7h = default;
        Accumulate<TTile, Conv2dNormalized.Operands>(ops, at.B, m0, n0, d.M - 1, d.N - 1, at.KBegin, at.KEnd, sa4, sb4, tid, at.TmIdx, at.TnIdx,
            ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
        var sink = new ConvTileSink(ops.Conv, tile, m0, n0, t.BN + 1);
        if (!Finish<TTile, Conv2dNormalized.Operands, ConvTileSink>(ops, d, partial, tileCounters, at.Z, at.B, m0, n0, tid, at.TmIdx, at.TnIdx, sink,
            c0l, c0h, c1l, c1h, c2l, c2h, c3l, c3h, c4l, c4h, c5l, c5h, c6l, c6h, c7l, c7h)) return;
        Group.Barrier();
        TileRowStatistics(norm, tile, d.M, m0, n0, t.BM, t.BN, tid, t.Threads);

        MemoryFence.DeviceLevel();
        Group.Barrier();
        int ticket = Grid.DimX * Grid.DimY;
        bool last = Group.BarrierOr(tid == 0 && Atomic.Add(ref tileCounters[ticket], 1) == ticket - 1);
        if (!last) return;
        MemoryFence.DeviceLevel();
        MergeIntoTable(norm, tile, d.M, t.BN, tid, t.Threads);
        if (tid == 0) tileCounters[ticket] = 0;
    }

    /// <summary>Each row of the tile (one channel over BN pixels of one image): its sum and its squared deviations from
    /// its mean (two passes over the shared copy), as the pair of (image, tile, channel).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TileRowStatistics(OutputGroupNorm norm, ArrayView<float> tile, int channels, int m0, int n0, int bm, int bn,
        int tid, int threads)
    {
        int pitch = bn + 1, tilesPerImage = norm.Positions / bn, img = n0 / norm.Positions;
        int slot = img * tilesPerImage + (n0 - img * norm.Positions) / bn;
        for (int r = tid; r < bm && m0 + r < channels; r += threads)
        {
            var row = tile.SubView(r * pitch, bn);
            float sum = 0;
            for (int j = 0; j < bn; j += 4) sum += (row[j] + row[j + 1]) + (row[j + 2] + row[j + 3]);
            float mean = sum / bn, sq = 0;
            for (int j = 0; j < bn; j += 4)
            {
                float a = row[j] - mean, b = row[j + 1] - mean, c = row[j + 2] - mean, e = row[j + 3] - mean;
                sq += (a * a + b * b) + (c * c + e * e);
            }
            int o = 2 * (slot * channels + m0 + r);
            norm.Partials[o] = sum;
            norm.Partials[o + 1] = sq;
        }
    }

    /// <summary>The last block: per image, each channel's pairs over the tiles (Chan's merge, shifted by the first tile's
    /// sum) into shared memory, then each group's mean and rstd from its channels, then the table.</summary>
    private static void MergeIntoTable(OutputGroupNorm norm, ArrayView<float> shared, int channels, int bn, int tid, int threads)
    {
        int tilesPerImage = norm.Positions / bn, perGroup = channels / norm.Groups, stride = 2 * channels;
        float perChannel = norm.Positions;
        for (int img = 0; img < norm.Images; img++)
        {
            for (int c = tid; c < channels; c += threads)
            {
                int o = 2 * (img * tilesPerImage * channels + c);
                float shift = norm.Partials[o], sum = 0, dev = 0, dev2 = 0, within = 0;
                int i = 0;
                // Four tiles at a time: their loads are independent, so they overlap.
                for (; i + 4 <= tilesPerImage; i += 4)
                {
                    int p = o + i * stride;
                    float s0 = norm.Partials[p], s1 = norm.Partials[p + stride], s2 = norm.Partials[p + 2 * stride], s3 = norm.Partials[p + 3 * stride];
                    float q0 = norm.Partials[p + 1], q1 = norm.Partials[p + stride + 1], q2 = norm.Partials[p + 2 * stride + 1], q3 = norm.Partials[p + 3 * stride + 1];
                    float d0 = s0 - shift, d1 = s1 - shift, d2 = s2 - shift, d3 = s3 - shift;
                    sum += (s0 + s1) + (s2 + s3);
                    dev += (d0 + d1) + (d2 + d3);
                    dev2 += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
                    within += (q0 + q1) + (q2 + q3);
                }
                for (; i < tilesPerImage; i++)
                {
                    float s = norm.Partials[o + i * stride], e = s - shift;
                    sum += s;
                    dev += e;
                    dev2 += e * e;
                    within += norm.Partials[o + i * stride + 1];
                }
                // Between the tiles: sum over tiles of (s_t - mean of s) ^ 2 / bn, with s_t shifted (the shift cancels).
                shared[2 * c] = sum / perChannel;
                shared[2 * c + 1] = within + (dev2 - dev * dev / tilesPerImage) / bn;
            }
            Group.Barrier();
            for (int g = tid; g < norm.Groups; g += threads)
            {
                int c0 = g * perGroup;
                float mean = 0;
                for (int j = 0; j < perGroup; j++) mean += shared[2 * (c0 + j)];
                mean /= perGroup;
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
                    int row = img * channels + c0 + j;
                    norm.Table[2 * row] = scale;
                    norm.Table[2 * row + 1] = norm.Beta[c0 + j] - mean * scale;
                }
            }
            Group.Barrier();
        }
    }

    /// <summary>Whether a normalised convolution of this plan can prepare its output's GroupNorm (see the class summary):
    /// tiles within one image, not 128x128, at most <see cref="MaxImages"/> images, the merge's pairs within the tile's
    /// shared copy.</summary>
    internal static bool ServesNormStats(Plan plan, int channels, int images, int positions) =>
        plan.TileM != 128 && positions > 0 && positions % plan.TileN == 0 && images is > 0 and <= MaxImages &&
        2 * channels <= plan.TileM * (plan.TileN + 1);

    /// <summary>
    /// Runs the normalised convolution <paramref name="ops"/> (m = Cout, n = images x positions, depth k) and fills
    /// <paramref name="norm"/>'s table for its output in the same launch. Returns false, launching nothing, where the plan
    /// does not serve it (<see cref="ServesNormStats"/>): the caller then runs the plain launch and the table's own.
    /// </summary>
    internal static bool LaunchNormStats(GpuDevice device, string key, Conv2dNormalized.Operands ops, int m, int n, int k,
        OutputGroupNorm norm, GemmVariant variant)
    {
        var plan = PlanFor(device, variant, m, n, k, 1, im2col: true);
        if (!ServesNormStats(plan, m, norm.Images, norm.Positions) || norm.Images * norm.Positions != n) return false;
        switch (plan.TileM, plan.TileN)
        {
            case (64, 64): RunNormStats<Tile64x64>(device, key, ops, m, n, k, plan.Splits, norm); break;
            default: RunNormStats<Tile64x32>(device, key, ops, m, n, k, plan.Splits, norm); break;
        }
        return true;
    }

    private static void RunNormStats<TTile>(GpuDevice device, string key, Conv2dNormalized.Operands ops, int m, int n, int k, int splits,
        OutputGroupNorm norm) where TTile : struct, IGemmTile
    {
        var (dims, config, partial, counters) = Prepare<TTile>(device, m, n, k, 1, splits, launchTicket: true);
        var t = default(TTile);
        var kernel = device.Kernel($"{key}-{typeof(TTile).Name}", acc => acc.LoadStreamKernel<Conv2dNormalized.Operands, Dims,
            ArrayView<float>, ArrayView<int>, OutputGroupNorm>(KernelNormStats<TTile>, new KernelSpecialization(t.Threads, t.MinGroupsPerSM)));
        kernel(config, ops, dims, partial, counters, norm);
    }
}
