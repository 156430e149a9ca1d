using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Tests.Models;

/// <summary>
/// At batch 1 outside training the up path's concatenations are written in place: the skip goes straight into its
/// channel range of the buffer its up step consumes, the running tensor into the other, and no concat launch runs.
/// The result must be the concatenating pass's, with and without a mid block (without one, up step 0's running tensor
/// is its own skip and that concatenation stays a launch): bitwise where no launch prepares GroupNorm tables (the CPU),
/// and within rounding on the GPU's paths, where each skip's launch saves its channel statistics and the launch writing
/// the other part makes the concatenation's norm1 table from them (no table launch after a concatenation).
/// </summary>
public class UNetConcatenationTests
{
    private static readonly UNet2DConfig Small = new()
    {
        SampleSize = 8,
        InChannels = 1,
        OutChannels = 1,
        BlockOutChannels = [8, 16, 16],
        LayersPerBlock = 1,
        NormNumGroups = 4,
        AttentionHeadDim = 4,
        DownBlockTypes = ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    };

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var (name, device) in new[] { ("cpu", (Func<GpuDevice>)(() => TestDevices.Cpu)), ("gpu-paths", () => TestDevices.CpuOnGpuPaths) })
        {
            // On the GPU's paths at 32x32, every level's positions are whole tiles: every table is prepared by a producer.
            yield return new TestCaseData(name, device, name == "cpu" ? Small : Small with { SampleSize = 32 }).SetArgDisplayNames(name, "mid-block");
            // Orchestration is the same on every device: the slow GPU-path simulation runs the mid-block case only.
            if (name == "cpu")
                yield return new TestCaseData(name, device, Small with { MidBlockType = null }).SetArgDisplayNames(name, "no-mid-block");
        }
        yield return new TestCaseData("gpu", (Func<GpuDevice>)(() => TestDevices.Gpu), Small with { SampleSize = 32 }).SetArgDisplayNames("gpu", "mid-block")
            .SetCategory("Gpu");
    }

    [TestCaseSource(nameof(Cases))]
    public void InPlaceConcatenations_GiveTheConcatenatingPass(string name, Func<GpuDevice> device, UNet2DConfig config)
    {
        var dev = device();
        using var model = UNet2DModel.Create(dev, config, seed: 3, withGradients: false);
        int s = config.SampleSize!.Value;
        using var x = Tensor.FromHost(dev, TestData.Random(s * s, 5), 1, 1, s, s);
        using var eps = Tensor.Empty(dev, 1, 1, s, s);

        model.ElidesConcatenations = false;
        model.PredictEpsilon(x, [321f], eps);
        var concatenated = eps.ToHost();
        var before = dev.LaunchesByKernel.GetValueOrDefault("concat-channels");
        model.PredictEpsilon(x, [321f], eps);
        long concatLaunches = dev.LaunchesByKernel.GetValueOrDefault("concat-channels") - before;

        model.ElidesConcatenations = true;
        before = dev.LaunchesByKernel.GetValueOrDefault("concat-channels");
        long tablesBefore = dev.LaunchesByKernel.GetValueOrDefault("group-norm-table");
        model.PredictEpsilon(x, [321f], eps);
        long inPlaceLaunches = dev.LaunchesByKernel.GetValueOrDefault("concat-channels") - before;
        long tableLaunches = dev.LaunchesByKernel.GetValueOrDefault("group-norm-table") - tablesBefore;
        var inPlace = eps.ToHost();

        Assert.That(concatenated.All(float.IsFinite), "the pass computes numbers");
        bool preparesTables = name != "cpu";
        if (!preparesTables)
        {
            for (int i = 0; i < inPlace.Length; i++)
                Assert.That(BitConverter.SingleToInt32Bits(inPlace[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(concatenated[i])),
                    $"{name}: element {i}: {inPlace[i]:R} in place, {concatenated[i]:R} concatenated");
        }
        else
        {
            // The concatenations' tables come from saved statistics, summed in another order than the table launch's.
            TestData.AssertClose(inPlace, concatenated, 1e-5, $"{name}: in place against concatenated");
            Assert.That(tableLaunches, Is.Zero, $"{name}: no GroupNorm table launch (after an in-place concatenation or elsewhere)");
        }
        // 3 blocks x (1 + 1) up resnets each concatenate a skip; without a mid block the first stays a launch.
        Assert.That((concatLaunches, inPlaceLaunches), Is.EqualTo((6L, config.HasMidBlock ? 0L : 1L)));
    }

    [Test]
    public void SliceChannels_IsTheChannelRangeOfABatchOneTensor()
    {
        var dev = TestDevices.Cpu;
        var data = Enumerable.Range(0, 5 * 2 * 3).Select(i => (float)i).ToArray();
        using var t = Tensor.FromHost(dev, data, 1, 5, 2, 3);
        using var slice = t.SliceChannels(1, 3);
        Assert.That(slice.Shape, Is.EqualTo(new[] { 1, 3, 2, 3 }));
        Assert.That(slice.ToHost(), Is.EqualTo(data.Skip(6).Take(18).ToArray()));
        using var batch2 = Tensor.Zeros(dev, 2, 5, 2, 3);
        Assert.That(() => batch2.SliceChannels(0, 1), Throws.ArgumentException.With.Message.Contains("one-item"));
        Assert.That(() => t.SliceChannels(3, 3), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }
}
