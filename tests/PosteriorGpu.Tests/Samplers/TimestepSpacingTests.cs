using System.Text.Json;
using NUnit.Framework;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Tests.Samplers;

/// <summary>Inference timesteps against diffusers' set_timesteps.</summary>
/// <remarks>
/// "NumPy" values were produced once by NumPy 2.5.2 evaluating the expressions of diffusers'
/// DDIMScheduler.set_timesteps / DPMSolverMultistepScheduler.set_timesteps (commit 58eb52c) for every
/// num_inference_steps n = 1..T; the hashes are FNV-1a 64 over all those timesteps (int32, little-endian,
/// n ascending), after removing the spurious trailing -1 described in TimestepSpacing.Ddim.
/// </remarks>
public class TimestepSpacingTests
{
    private static readonly NoiseSchedule Linear1000 = NoiseSchedule.Linear(1000, 0.0001, 0.02);

    [Test]
    public void Fixture_DdimTimestepsFromMetaJson()
    {
        // shared/fixtures/diffusers-unet-tiny: DDIMScheduler (leading, T = 1000) after set_timesteps(10).
        string dir = ScheduleFixtures.Path("diffusers-unet-tiny");
        var config = SchedulerConfig.Load(Path.Combine(dir, "scheduler_config.json"));
        using var meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "meta.json")));
        int[] expected = meta.RootElement.GetProperty("timesteps").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var s = NoiseSchedule.FromConfig(config);
        Assert.That(s.Timesteps(10, config.TimestepSpacing, config.StepsOffset), Is.EqualTo(expected));
        Assert.That(expected, Is.EqualTo(new[] { 900, 800, 700, 600, 500, 400, 300, 200, 100, 0 }));
    }

    [Test]
    public void Leading_WithStepsOffset_MatchesDiffusersTest()
    {
        // diffusers tests/schedulers/test_scheduler_ddim.py, DDIMSchedulerTest.test_steps_offset:
        // steps_offset=1, set_timesteps(5) -> [801, 601, 401, 201, 1].
        Assert.That(Linear1000.Timesteps(5, "leading", 1), Is.EqualTo(new[] { 801, 601, 401, 201, 1 }));
    }

    [Test]
    public void TenSteps_MatchLinEtAlTable2()
    {
        // Lin et al. 2023 (arXiv:2305.08891), Table 2, T = 1000, 10 steps, written 1-based there:
        // linspace 1, 112, ..., 1000; leading 1, 101, ..., 901; trailing 100, 200, ..., 1000. diffusers is 0-based.
        Assert.That(Linear1000.Timesteps(10, "linspace"), Is.EqualTo(new[] { 999, 888, 777, 666, 555, 444, 333, 222, 111, 0 }));
        Assert.That(Linear1000.Timesteps(10, "leading"), Is.EqualTo(new[] { 900, 800, 700, 600, 500, 400, 300, 200, 100, 0 }));
        Assert.That(Linear1000.Timesteps(10, "trailing"), Is.EqualTo(new[] { 999, 899, 799, 699, 599, 499, 399, 299, 199, 99 }));
        Assert.That(Linear1000.Timesteps(10, "leading", 1), Is.EqualTo(new[] { 901, 801, 701, 601, 501, 401, 301, 201, 101, 1 }));
    }

    [Test]
    public void FiftySteps_MatchNumPy()
    {
        var leading = Enumerable.Range(0, 50).Select(k => 980 - 20 * k).ToArray();
        Assert.That(Linear1000.Timesteps(50), Is.EqualTo(leading));
        Assert.That(Linear1000.Timesteps(50, "leading", 1), Is.EqualTo(leading.Select(t => t + 1).ToArray()));
        Assert.That(Linear1000.Timesteps(50, "trailing"), Is.EqualTo(Enumerable.Range(0, 50).Select(k => 999 - 20 * k).ToArray()));
        Assert.That(Linear1000.Timesteps(50, "linspace"), Is.EqualTo(new[]
        {
            999, 979, 958, 938, 917, 897, 877, 856, 836, 816, 795, 775, 754, 734, 714, 693, 673, 652, 632, 612, 591, 571, 550, 530, 510,
            489, 469, 449, 428, 408, 387, 367, 347, 326, 306, 285, 265, 245, 224, 204, 183, 163, 143, 122, 102, 82, 61, 41, 20, 0,
        }));
    }

    [Test]
    public void OddSizes_MatchNumPy()
    {
        var s = NoiseSchedule.Linear(37, 0.0001, 0.02);
        Assert.That(s.Timesteps(10, "leading"), Is.EqualTo(new[] { 27, 24, 21, 18, 15, 12, 9, 6, 3, 0 }));
        Assert.That(s.Timesteps(10, "trailing"), Is.EqualTo(new[] { 36, 32, 29, 25, 21, 17, 14, 10, 6, 3 }));
        Assert.That(s.Timesteps(10, "linspace"), Is.EqualTo(new[] { 36, 32, 28, 24, 20, 16, 12, 8, 4, 0 }));
        Assert.That(Linear1000.Timesteps(3, "trailing"), Is.EqualTo(new[] { 999, 666, 332 }));
        Assert.That(Linear1000.Timesteps(3, "linspace"), Is.EqualTo(new[] { 999, 500, 0 }));
        Assert.That(Linear1000.Timesteps(1, "trailing"), Is.EqualTo(new[] { 999 }));
        Assert.That(Linear1000.Timesteps(1000, "leading"), Is.EqualTo(Enumerable.Range(0, 1000).Reverse().ToArray()));
    }

    [Test]
    public void Trailing_DropsNumPysSpuriousMinusOne()
    {
        // NumPy: np.round(np.arange(1000, 0, -1000/61)) - 1 has 62 elements, the last -1 (length ceil(1000 / 16.39...) = 62):
        // [999, 983, 966, ..., 32, 15, -1]. We return diffusers' first 61.
        var t = Linear1000.Timesteps(61, "trailing");
        Assert.That(t, Has.Length.EqualTo(61));
        Assert.That(t.Take(3), Is.EqualTo(new[] { 999, 983, 966 }));
        Assert.That(t.TakeLast(3), Is.EqualTo(new[] { 48, 32, 15 }));
        var odd = NoiseSchedule.Linear(999, 0.0001, 0.02).Timesteps(13, "trailing");
        Assert.That(odd, Is.EqualTo(new[] { 998, 921, 844, 767, 691, 614, 537, 460, 383, 306, 230, 153, 76 }));
    }

    [TestCase(1000, "leading", 0x0ab5c887ee9ad893UL)]
    [TestCase(1000, "trailing", 0xdde9dd46468e1178UL)]
    [TestCase(1000, "linspace", 0x956ee784d1982f64UL)]
    [TestCase(999, "leading", 0x6c1be09f0d21ca1cUL)]
    [TestCase(999, "trailing", 0xa0daca8740736978UL)]
    [TestCase(999, "linspace", 0x4a08964ceafb94a0UL)]
    public void Ddim_EveryStepCount_MatchesNumPy(int T, string spacing, ulong expectedHash)
    {
        ulong h = 0xcbf29ce484222325UL;
        for (int n = 1; n <= T; n++)
        {
            var ts = TimestepSpacing.Ddim(T, n, spacing);
            Assert.That(ts, Has.Length.EqualTo(n));
            for (int k = 1; k < n; k++)
                if (ts[k] >= ts[k - 1]) Assert.Fail($"T={T} n={n} {spacing}: not descending at {k}");
            h = NoiseScheduleTests.Fnv1a(ts, h);
        }
        Assert.That(h, Is.EqualTo(expectedHash));
    }

    [TestCase(1000, "leading", 0x9032ef250ff23a13UL)]
    [TestCase(1000, "trailing", 0xdde9dd46468e1178UL)]
    [TestCase(1000, "linspace", 0x2ce0edf9d7cd748bUL)]
    [TestCase(999, "leading", 0x4bd5eabd57bf514cUL)]
    [TestCase(999, "trailing", 0xa0daca8740736978UL)]
    [TestCase(999, "linspace", 0xc98932927e0b9d1aUL)]
    public void DpmSolver_EveryStepCount_MatchesNumPy(int T, string spacing, ulong expectedHash)
    {
        ulong h = 0xcbf29ce484222325UL;
        for (int n = 1; n <= T; n++) h = NoiseScheduleTests.Fnv1a(TimestepSpacing.DpmSolver(T, n, spacing), h);
        Assert.That(h, Is.EqualTo(expectedHash));
    }

    [Test]
    public void DpmSolver_TenSteps_MatchNumPy()
    {
        Assert.That(TimestepSpacing.DpmSolver(1000, 10, "linspace"), Is.EqualTo(new[] { 999, 899, 799, 699, 599, 500, 400, 300, 200, 100 }));
        Assert.That(TimestepSpacing.DpmSolver(1000, 10, "leading"), Is.EqualTo(new[] { 900, 810, 720, 630, 540, 450, 360, 270, 180, 90 }));
        Assert.That(TimestepSpacing.DpmSolver(1000, 10, "trailing"), Is.EqualTo(new[] { 999, 899, 799, 699, 599, 499, 399, 299, 199, 99 }));
    }

    [Test]
    public void Errors_NameTheValue()
    {
        var e = Assert.Throws<ArgumentException>(() => Linear1000.Timesteps(10, "uniform"))!;
        Assert.That(e.Message, Does.Contain("'uniform'").And.Contain("leading, trailing, linspace"));
        var big = Assert.Throws<ArgumentException>(() => Linear1000.Timesteps(1001))!;
        Assert.That(big.Message, Does.Contain("1001").And.Contain("1000"));
        Assert.Throws<ArgumentOutOfRangeException>(() => Linear1000.Timesteps(0));
        var off = Assert.Throws<ArgumentException>(() => Linear1000.Timesteps(1000, "leading", 1))!;
        Assert.That(off.Message, Does.Contain("1000").And.Contain("steps_offset 1"));
        Assert.Throws<ArgumentOutOfRangeException>(() => TimestepSpacing.DpmSolver(1000, 10, "linspace", 0, lastTimestep: 1001));
    }
}
