using NUnit.Framework;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Tests.Samplers;

/// <summary>NoiseSchedule against diffusers' numbers.</summary>
/// <remarks>
/// "torch" values below were produced once by PyTorch 2.11.0 (CPU, capability AVX512) and NumPy 2.5.2
/// evaluating exactly the expressions of diffusers' DDIMScheduler/DDPMScheduler.__init__
/// (src/diffusers/schedulers/scheduling_ddim.py, commit 58eb52c): torch.linspace(beta_start, beta_end, T,
/// dtype=torch.float32), torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float32)**2,
/// betas_for_alpha_bar(T) and torch.cumprod(1.0 - betas, dim=0). Hashes are FNV-1a 64 over the float32
/// bit patterns (little-endian) of the whole array, so equality means every element is bit-identical.
/// </remarks>
public class NoiseScheduleTests
{
    private static NoiseSchedule Make(string kind, int T, double b0, double b1) => kind switch
    {
        "linear" => NoiseSchedule.Linear(T, b0, b1),
        "scaled_linear" => NoiseSchedule.ScaledLinear(T, b0, b1),
        _ => NoiseSchedule.SquaredCosCapV2(T),
    };

    internal static ulong Fnv1a(IEnumerable<int> words, ulong h = 0xcbf29ce484222325UL)
    {
        foreach (int w in words)
        {
            uint u = (uint)w;
            for (int k = 0; k < 4; k++)
            {
                h ^= (u >> (8 * k)) & 0xff;
                h *= 0x100000001b3UL;
            }
        }
        return h;
    }

    private static ulong Hash(float[] a) => Fnv1a(a.Select(BitConverter.SingleToInt32Bits));

    [TestCase("linear", 1000, 0.0001, 0.02, 0xbb31b4e0b7e124c8UL, 0x5b0ad40d73df8aecUL)]
    [TestCase("linear", 37, 0.0001, 0.02, 0xcde579b72eeda2c6UL, 0x15766dcebac0fc06UL)]
    [TestCase("linear", 1000, 0.0001, 0.002, 0x5b42d8dd9b31df2dUL, 0x5bc1e17008111fe3UL)]
    [TestCase("linear", 37, 0.0001, 0.002, 0xe73b5d3984fbcf0fUL, 0x1d974127c1a2e992UL)]
    [TestCase("scaled_linear", 1000, 0.00085, 0.012, 0xf3741691d38f400cUL, 0x552efb731a320022UL)]
    [TestCase("scaled_linear", 37, 0.00085, 0.012, 0x9ceff7c27bea72c0UL, 0x5bc1ce732478ec81UL)]
    [TestCase("squaredcos_cap_v2", 1000, 0, 0, 0xa6fd964c8144c50bUL, 0x6d7434fdfe965e9eUL)]
    [TestCase("squaredcos_cap_v2", 37, 0, 0, 0x55e99349f4fdb92dUL, 0x2e8293ea3ff24e87UL)]
    public void BetasAndAlphasCumprod_AreBitIdenticalToTorch(string kind, int T, double b0, double b1, ulong betasHash, ulong alphasCumprodHash)
    {
        var s = Make(kind, T, b0, b1);
        Assert.That(s.NumTrainTimesteps, Is.EqualTo(T));
        Assert.That(Hash(s.Betas), Is.EqualTo(betasHash), "betas differ from torch in at least one bit");
        Assert.That(Hash(s.AlphasCumprod), Is.EqualTo(alphasCumprodHash), "alphas_cumprod differ from torch in at least one bit");
    }

    // Individual torch values (float32, printed with Python's repr of the widened double).
    [TestCase("linear", 0.0001, 0.02, 0, 9.999999747378752e-05f, 0.9998999834060669f)]
    [TestCase("linear", 0.0001, 0.02, 1, 0.00011991991777904332f, 0.9997800588607788f)]
    [TestCase("linear", 0.0001, 0.02, 499, 0.010040040127933025f, 0.07858723402023315f)]
    [TestCase("linear", 0.0001, 0.02, 500, 0.010059959255158901f, 0.07779665291309357f)]
    [TestCase("linear", 0.0001, 0.02, 999, 0.019999999552965164f, 4.035830352222547e-05f)]
    [TestCase("scaled_linear", 0.00085, 0.012, 0, 0.0008499999530613422f, 0.9991499781608582f)]
    [TestCase("scaled_linear", 0.00085, 0.012, 500, 0.004814953543245792f, 0.27633246779441833f)]
    [TestCase("scaled_linear", 0.00085, 0.012, 999, 0.011999999172985554f, 0.00466009508818388f)]
    [TestCase("squaredcos_cap_v2", 0, 0, 0, 4.128422369831242e-05f, 0.9999586939811707f)]
    [TestCase("squaredcos_cap_v2", 0, 0, 500, 0.003155691549181938f, 0.4922850430011749f)]
    [TestCase("squaredcos_cap_v2", 0, 0, 998, 0.7499994039535522f, 2.428766265438753e-06f)]
    [TestCase("squaredcos_cap_v2", 0, 0, 999, 0.9990000128746033f, 2.4287349909002387e-09f)]
    public void SpotValues_EqualTorch(string kind, double b0, double b1, int t, float beta, float alphaCumprod)
    {
        var s = Make(kind, 1000, b0, b1);
        Assert.That(s.Betas[t], Is.EqualTo(beta), $"betas[{t}]");
        Assert.That(s.AlphasCumprod[t], Is.EqualTo(alphaCumprod), $"alphas_cumprod[{t}]");
        Assert.That(s.AlphaCumprod(t), Is.EqualTo((double)alphaCumprod));
    }

    [Test]
    public void ScaledLinear_TerminalSignalLevel_MatchesLinEtAl()
    {
        // Lin et al. 2023 (arXiv:2305.08891), section 3.1: Stable Diffusion's schedule (scaled_linear,
        // 0.00085..0.012, T = 1000) has sqrt(alpha_bar_T) = 0.068265 at its last timestep.
        var s = NoiseSchedule.ScaledLinear(1000, 0.00085, 0.012);
        Assert.That(Math.Sqrt(s.AlphasCumprod[999]), Is.EqualTo(0.068265).Within(5e-7));
    }

    [TestCase("linear", 1000, 0.0001, 0.02)]
    [TestCase("scaled_linear", 1000, 0.00085, 0.012)]
    [TestCase("squaredcos_cap_v2", 1000, 0, 0)]
    [TestCase("linear", 5, 0.001, 0.3)]
    public void AlphasCumprod_IsDoubleAccumulatedProductRoundedToFloat(string kind, int T, double b0, double b1)
    {
        // torch.cumprod on a CPU float32 tensor accumulates in double (acc_type<float, false> is double)
        // and rounds each partial product once.
        var s = Make(kind, T, b0, b1);
        double acc = 1;
        for (int i = 0; i < T; i++)
        {
            Assert.That(s.Alphas[i], Is.EqualTo(1f - s.Betas[i]), $"alphas[{i}]");
            acc *= s.Alphas[i];
            Assert.That(s.AlphasCumprod[i], Is.EqualTo((float)acc), $"alphas_cumprod[{i}]");
        }
    }

    [Test]
    public void AlphasCumprod_DiffersFromAFloat32RunningProduct()
    {
        // Guards against "simplifying" the cumprod to float accumulation: that is not what torch computes.
        var s = NoiseSchedule.Linear(1000, 0.0001, 0.02);
        float run = 1f;
        int differ = 0;
        for (int i = 0; i < 1000; i++)
        {
            run *= s.Alphas[i];
            if (run != s.AlphasCumprod[i]) differ++;
        }
        Assert.That(differ, Is.GreaterThan(0));
    }

    [Test]
    public void Linear_AgreesWithTheExactFormulaInDouble()
    {
        // beta_i = b0 + i (b1 - b0) / (T - 1); float32 linspace is within a few float ulps of it.
        const int T = 1000;
        var s = NoiseSchedule.Linear(T, 0.0001, 0.02);
        double acc = 1;
        for (int i = 0; i < T; i++)
        {
            double b = 0.0001 + i * (0.02 - 0.0001) / (T - 1);
            Assert.That(s.Betas[i], Is.EqualTo(b).Within(2e-6 * b), $"betas[{i}]");
            acc *= 1 - b;
            // Each float32 alpha carries a relative rounding error up to 2^-24; 1000 of them stay well below 1e-4.
            Assert.That(s.AlphasCumprod[i], Is.EqualTo(acc).Within(1e-4 * acc), $"alphas_cumprod[{i}]");
        }
    }

    [Test]
    public void ScaledLinear_AgreesWithTheExactFormulaInDouble()
    {
        const int T = 1000;
        double r0 = Math.Sqrt(0.00085), r1 = Math.Sqrt(0.012);
        var s = NoiseSchedule.ScaledLinear(T, 0.00085, 0.012);
        for (int i = 0; i < T; i++)
        {
            double r = r0 + i * (r1 - r0) / (T - 1);
            Assert.That(s.Betas[i], Is.EqualTo(r * r).Within(5e-6 * r * r), $"betas[{i}]");
        }
    }

    [Test]
    public void SquaredCosCapV2_AgreesWithNicholDhariwalCosineAlphaBar()
    {
        // Nichol and Dhariwal 2021, eq. 17: alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), s = 0.008;
        // beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, clipped at 0.999. Written here in the f(t1)-f(t2) form.
        const int T = 1000;
        var s = NoiseSchedule.SquaredCosCapV2(T);
        for (int i = 0; i < T; i++)
        {
            double f1 = Math.Pow(Math.Cos((i / (double)T + 0.008) / 1.008 * Math.PI / 2), 2);
            double f2 = Math.Pow(Math.Cos(((i + 1) / (double)T + 0.008) / 1.008 * Math.PI / 2), 2);
            double b = Math.Min((f1 - f2) / f1, 0.999);
            Assert.That(s.Betas[i], Is.EqualTo(b).Within(1e-6 * b), $"betas[{i}]");
        }
        Assert.That(s.Betas[999], Is.EqualTo(0.999f));
        Assert.That(s.Betas[998], Is.LessThan(0.999f));
    }

    [Test]
    public void FromConfig_BuildsTheNamedSchedule()
    {
        Assert.That(NoiseSchedule.FromConfig(new SchedulerConfig()).AlphasCumprod,
            Is.EqualTo(NoiseSchedule.Linear(1000, 0.0001, 0.02).AlphasCumprod));
        Assert.That(NoiseSchedule.FromConfig(new SchedulerConfig { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012 }).Betas,
            Is.EqualTo(NoiseSchedule.ScaledLinear(1000, 0.00085, 0.012).Betas));
        Assert.That(NoiseSchedule.FromConfig(new SchedulerConfig { BetaSchedule = "squaredcos_cap_v2", NumTrainTimesteps = 50 }).Betas,
            Is.EqualTo(NoiseSchedule.SquaredCosCapV2(50).Betas));
        var trained = NoiseSchedule.FromConfig(new SchedulerConfig { NumTrainTimesteps = 3, TrainedBetas = [0.1, 0.2, 0.30000000000000004] });
        Assert.That(trained.Betas, Is.EqualTo(new[] { 0.1f, 0.2f, 0.3f }));
        Assert.That(trained.AlphasCumprod[2], Is.EqualTo((float)((double)0.9f * 0.8f * 0.7f)));
    }

    [Test]
    public void FromConfig_UnknownBetaSchedule_NamesValueAndSupportedOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => NoiseSchedule.FromConfig(new SchedulerConfig { BetaSchedule = "cosine" }))!;
        Assert.That(e.Message, Does.Contain("'cosine'").And.Contain("linear, scaled_linear, squaredcos_cap_v2"));
    }

    [Test]
    public void Factories_RejectBadSizesAndBetas()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseSchedule.Linear(0, 0.0001, 0.02));
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseSchedule.SquaredCosCapV2(-3));
        // diffusers accepts beta_end = 2 (its test_betas does) and produces negative alphas; we refuse.
        var e = Assert.Throws<ArgumentException>(() => NoiseSchedule.Linear(10, 0.1, 2.0))!;
        Assert.That(e.Message, Does.Contain("outside (0, 1)"));
        Assert.Throws<ArgumentException>(() => NoiseSchedule.Linear(10, 0.0, 0.02));
        Assert.Throws<ArgumentException>(() => NoiseSchedule.FromBetas([0.1, 1.0]));
        Assert.Throws<ArgumentException>(() => NoiseSchedule.FromBetas([0.1, double.NaN]));
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseSchedule.FromBetas([]));
    }

    [Test]
    public void SingleTimestep_IsAllowed()
    {
        var s = NoiseSchedule.Linear(1, 0.0001, 0.02);
        Assert.That(s.Betas, Is.EqualTo(new[] { 0.0001f }));
        Assert.That(s.Timesteps(1), Is.EqualTo(new[] { 0 }));
    }

    [Test]
    public void AlphaCumprodPrev_FollowsDdimFinalAlphaRule()
    {
        var s = NoiseSchedule.Linear(1000, 0.0001, 0.02);
        Assert.That(s.AlphaCumprodPrev(800), Is.EqualTo((double)s.AlphasCumprod[800]));
        Assert.That(s.AlphaCumprodPrev(0), Is.EqualTo((double)s.AlphasCumprod[0]));
        Assert.That(s.AlphaCumprodPrev(-100), Is.EqualTo(1.0));
        Assert.That(s.AlphaCumprodPrev(-1, setAlphaToOne: false), Is.EqualTo((double)s.AlphasCumprod[0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.AlphaCumprodPrev(1000));
    }

    [Test]
    public void PreviousTimestep_IsDdimsStride()
    {
        var s = NoiseSchedule.Linear(1000, 0.0001, 0.02);
        Assert.That(s.PreviousTimestep(900, 10), Is.EqualTo(800));
        Assert.That(s.PreviousTimestep(0, 10), Is.EqualTo(-100));
        Assert.That(s.PreviousTimestep(999, 3), Is.EqualTo(666)); // 1000 // 3 = 333, whatever the spacing
        Assert.Throws<ArgumentOutOfRangeException>(() => s.PreviousTimestep(1000, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.PreviousTimestep(10, 1001));
    }

    // diffusers tests/schedulers/test_scheduler_ddim.py, DDIMSchedulerTest.test_variance (linear 0.0001..0.02, T = 1000):
    // _get_variance(t, prev) = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev), asserted there to 1e-5.
    [TestCase(0, 0, 0.0)]
    [TestCase(420, 400, 0.14771)]
    [TestCase(980, 960, 0.32460)]
    [TestCase(487, 486, 0.00979)]
    [TestCase(999, 998, 0.02)]
    public void DdimVariance_MatchesDiffusersTest(int t, int prev, double expected)
    {
        var s = NoiseSchedule.Linear(1000, 0.0001, 0.02);
        double a = s.AlphaCumprod(t), ap = s.AlphaCumprodPrev(prev);
        double variance = (1 - ap) / (1 - a) * (1 - a / ap);
        Assert.That(variance, Is.EqualTo(expected).Within(1e-5));
    }

    // diffusers tests/schedulers/test_scheduler_ddpm.py, DDPMSchedulerTest.test_variance: fixed_small variance
    // (1 - a_{t-1}) / (1 - a_t) * beta_t with a_{-1} = 1: _get_variance(0) = 0, (487) = 0.00979, (999) = 0.02.
    [TestCase(0, 0.0)]
    [TestCase(487, 0.00979)]
    [TestCase(999, 0.02)]
    public void DdpmVariance_MatchesDiffusersTest(int t, double expected)
    {
        var s = NoiseSchedule.Linear(1000, 0.0001, 0.02);
        double a = s.AlphaCumprod(t), ap = s.AlphaCumprodPrev(t - 1);
        double variance = (1 - ap) / (1 - a) * (1 - a / ap);
        Assert.That(variance, Is.EqualTo(expected).Within(1e-5));
    }

    [Test]
    public void Sigma_IsTheVarianceExplodingNoiseLevel()
    {
        var s = NoiseSchedule.Linear(1000, 0.0001, 0.02);
        double prev = 0;
        for (int t = 0; t < 1000; t++)
        {
            double a = s.AlphasCumprod[t];
            Assert.That(s.Sigma(t), Is.EqualTo(Math.Sqrt((1 - a) / a)).Within(1e-15 * s.Sigma(t)));
            Assert.That(s.Sigma(t), Is.GreaterThan(prev));
            prev = s.Sigma(t);
        }
        Assert.That(s.Sigma(999), Is.EqualTo(157.4).Within(0.1)); // sqrt((1 - 4.0358e-5) / 4.0358e-5)
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Sigma(1000));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Sigma(-1));
    }

    [Test]
    public void ZeroTerminalSnr_HasZeroFinalAlphaBarAndKeepsTheFirst()
    {
        // Lin et al. 2023, Algorithm 1: sqrt(alpha_bar) is shifted so its last value is 0 and scaled so its first is
        // unchanged. diffusers does this in float32; torch's vectorised float sqrt (AVX512) is not always correctly
        // rounded, so about 1% of diffusers' rescaled betas differ from ours by one float32 ulp.
        var s = NoiseSchedule.Linear(1000, 0.0001, 0.02);
        var z = NoiseSchedule.FromConfig(new SchedulerConfig { RescaleBetasZeroSnr = true });
        Assert.That(z.Betas[999], Is.EqualTo(1f));
        Assert.That(z.AlphasCumprod[999], Is.EqualTo(0f));
        Assert.That(z.AlphasCumprod[0], Is.EqualTo(s.AlphasCumprod[0]).Within(2e-7));
        double s0 = Math.Sqrt(s.AlphasCumprodDouble[0]), sT = Math.Sqrt(s.AlphasCumprodDouble[999]);
        for (int t = 0; t < 999; t++)
        {
            double expected = (Math.Sqrt(s.AlphasCumprodDouble[t]) - sT) * s0 / (s0 - sT);
            Assert.That(Math.Sqrt(z.AlphasCumprodDouble[t]), Is.EqualTo(expected).Within(1e-6 + 1e-5 * expected), $"t = {t}");
            Assert.That(z.Betas[t], Is.GreaterThan(0f).And.LessThan(1f));
        }
        Assert.That(double.IsPositiveInfinity(z.Sigma(999)));
    }

    [Test]
    public void LiEtAl_FollowsTheTalksFormulaWithOneBasedIndexing()
    {
        // beta_1 = 1/T^c0, beta_t = (c1 log T / T) min{beta_1 (1 + c1 log T / T)^t, 1} for t >= 2; index = t - 1.
        const int T = 1000;
        const double c0 = 2, c1 = 4;
        var s = NoiseSchedule.LiEtAl(T, c0, c1);
        double beta1 = 1e-6, r = c1 * Math.Log(T) / T;
        Assert.That(s.NumTrainTimesteps, Is.EqualTo(T));
        Assert.That(s.Betas[0], Is.EqualTo((float)beta1));
        Assert.That(s.Betas[1], Is.EqualTo((float)(r * beta1 * Math.Pow(1 + r, 2))), "t = 2 uses exponent 2");
        Assert.That(s.Betas[99], Is.EqualTo((float)(r * beta1 * Math.Pow(1 + r, 100))), "t = 100");
        Assert.That(s.Betas[T - 1], Is.EqualTo((float)r), "the min caps beta_t at c1 log T / T");
        double acc = 1;
        for (int t = 1; t <= T; t++)
        {
            double b = t == 1 ? beta1 : r * Math.Min(beta1 * Math.Pow(1 + r, t), 1);
            acc *= 1 - b;
            Assert.That(s.AlphasCumprodDouble[t - 1], Is.EqualTo(acc).Within(1e-14 * acc + 1e-300), $"alpha_bar_{t}");
            Assert.That(s.AlphasCumprod[t - 1], Is.EqualTo((float)acc), $"float alpha_bar_{t}");
            Assert.That(s.Alphas[t - 1], Is.EqualTo((float)(1 - b)), $"alpha_{t} is the double 1 - beta rounded");
        }
        // As written, beta_1 = T^-c0 is not multiplied by c1 log T / T while beta_t (t >= 2) is, so beta_2 < beta_1;
        // from t = 2 on the betas grow geometrically until the min caps them. alpha_bar ends near pure noise (~1e-6).
        Assert.That(s.Betas[1], Is.LessThan(s.Betas[0]));
        for (int k = 2; k < T; k++) Assert.That(s.Betas[k], Is.GreaterThanOrEqualTo(s.Betas[k - 1]));
        Assert.That(s.AlphasCumprod[T - 1], Is.LessThan(1e-4f));
    }

    [Test]
    public void LiEtAl_RejectsConstantsThatLeaveTheUnitInterval()
    {
        // T = 10, c1 = 10: c1 log T / T = 2.3 > 1, so beta_t > 1 once the geometric term saturates.
        var e = Assert.Throws<ArgumentException>(() => NoiseSchedule.LiEtAl(10, 1, 10))!;
        Assert.That(e.Message, Does.Contain("beta_"));
        Assert.Throws<ArgumentException>(() => NoiseSchedule.LiEtAl(1, 1, 1)); // beta_1 = 1/1^c0 = 1
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseSchedule.LiEtAl(100, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseSchedule.LiEtAl(100, 1, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseSchedule.LiEtAl(0, 1, 1));
    }
}
