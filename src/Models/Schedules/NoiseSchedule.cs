using static System.FormattableString;

namespace PosteriorGpu.Models.Schedules;

/// <summary>A discrete variance-preserving noise schedule: betas, alphas and alphas_cumprod over T training timesteps.</summary>
/// <remarks>
/// The forward process is x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, eq. 4).
/// Array index k (0-based, diffusers' "timestep") holds the values of the papers' step t = k + 1.
/// The diffusers schedules reproduce diffusers' float32 tensors bit for bit: betas from
/// torch.linspace in float32 (or float64 math rounded to float32 for squaredcos_cap_v2), alphas =
/// 1 - betas in float32, alphas_cumprod = torch.cumprod on the CPU (double accumulator, float32
/// results). The arrays are shared, not copied: do not modify them.
/// </remarks>
public sealed class NoiseSchedule
{
    // Diffusers schedules pass only float32 betas (alphas = 1 - betas in float32, cumprod as torch);
    // LiEtAl passes its double-precision alphas and products, which are rounded for the float views.
    private NoiseSchedule(float[] betas, string name, double[]? alphasExact = null, double[]? alphasCumprodExact = null)
    {
        Name = name;
        Betas = betas;
        Alphas = new float[betas.Length];
        for (int i = 0; i < betas.Length; i++) Alphas[i] = alphasExact is null ? 1f - betas[i] : (float)alphasExact[i];
        if (alphasCumprodExact is null)
        {
            AlphasCumprod = TorchFloat32.Cumprod(Alphas);
            AlphasCumprodDouble = Array.ConvertAll(AlphasCumprod, a => (double)a);
        }
        else
        {
            AlphasCumprodDouble = alphasCumprodExact;
            AlphasCumprod = Array.ConvertAll(alphasCumprodExact, a => (float)a);
        }
    }

    // The same arrays with the config (and its file) that built them.
    private NoiseSchedule(NoiseSchedule s, SchedulerConfig config, string? configFile)
    {
        Name = s.Name;
        Betas = s.Betas;
        Alphas = s.Alphas;
        AlphasCumprod = s.AlphasCumprod;
        AlphasCumprodDouble = s.AlphasCumprodDouble;
        Config = config;
        ConfigFile = configFile;
    }

    /// <summary>What built the schedule, e.g. "linear(0.0001, 0.02)".</summary>
    public string Name { get; }

    /// <summary>T, the number of training timesteps.</summary>
    public int NumTrainTimesteps => Betas.Length;

    /// <summary>beta at timestep index k = 0..T-1 (float32, as diffusers' self.betas).</summary>
    public float[] Betas { get; }

    /// <summary>1 - beta in float32 (diffusers' self.alphas).</summary>
    public float[] Alphas { get; }

    /// <summary>Cumulative products of Alphas (diffusers' self.alphas_cumprod, bit-exact float32).</summary>
    public float[] AlphasCumprod { get; }

    /// <summary>alphas_cumprod in double: the float32 values widened for diffusers schedules (so the numbers
    /// are diffusers'), the double-precision products for <see cref="LiEtAl"/>.</summary>
    public double[] AlphasCumprodDouble { get; }

    /// <summary>The scheduler config the schedule was built from (<see cref="FromConfig"/>), or null for a schedule built
    /// from numbers (<see cref="Linear"/> and the others), which clips and thresholds nothing.</summary>
    /// <remarks>Its step keys travel with the schedule so that every sampler that walks it honours them or refuses
    /// (<see cref="RequireSupported"/>); samplers also take timestep_spacing, steps_offset, set_alpha_to_one and
    /// prediction_type from it unless given options of their own.</remarks>
    public SchedulerConfig? Config { get; }

    /// <summary>The scheduler_config.json the <see cref="Config"/> came from, when known (error messages name it).</summary>
    public string? ConfigFile { get; }

    /// <summary>True when a step must clamp its predicted x0 to [-clip_sample_range, clip_sample_range]: clip_sample is
    /// set and thresholding is not (diffusers' steps test thresholding first).</summary>
    public bool ClipSample => Config is { ClipSample: true, Thresholding: false };

    /// <summary>True when a step must apply dynamic thresholding to its predicted x0 (the config's thresholding key).</summary>
    public bool Thresholding => Config is { Thresholding: true };

    /// <summary>
    /// Fails unless the sampler <paramref name="sampler"/> honours what this schedule's config asks of each step:
    /// clip_sample (with clip_sample_range) and thresholding (with dynamic_thresholding_ratio and sample_max_value).
    /// Every sampler calls it before it runs, so a key that is read is either honoured or an error, never ignored.
    /// </summary>
    /// <param name="sampler">The sampler's name, for the message (e.g. "pf-ode", "dps").</param>
    /// <param name="supportsClipSample">The sampler clamps its predicted x0 as diffusers' DDPM/DDIM steps do.</param>
    /// <param name="supportsThresholding">The sampler applies dynamic thresholding to its predicted x0.</param>
    /// <exception cref="NotSupportedException">The config sets a key the sampler does not implement; the message names
    /// the key, its value, the file when known and the sampler.</exception>
    public void RequireSupported(string sampler, bool supportsClipSample, bool supportsThresholding)
    {
        string file = ConfigFile is null ? "scheduler config" : ConfigFile;
        if (Thresholding && !supportsThresholding)
            throw new NotSupportedException(
                $"{file}: thresholding is true (dynamic_thresholding_ratio {Config!.DynamicThresholdingRatio}, sample_max_value " +
                $"{Config.SampleMaxValue}) but the sampler '{sampler}' does not implement dynamic thresholding of the predicted x0; " +
                "use ddpm, ddim or dpmsolver++2m, or set thresholding to false");
        if (ClipSample && !supportsClipSample)
            throw new NotSupportedException(
                $"{file}: clip_sample is true (clip_sample_range {Config!.ClipSampleRange}) but the sampler '{sampler}' does not " +
                "clip the predicted x0; use ddpm or ddim, or set clip_sample to false");
    }

    /// <summary>Builds the schedule a diffusers scheduler config describes (trained_betas, beta_schedule,
    /// rescale_betas_zero_snr), as DDIMScheduler/DDPMScheduler.__init__ do, and keeps the config (<see cref="Config"/>)
    /// for the samplers; <paramref name="configFile"/> is the file it was read from, for error messages.</summary>
    /// <exception cref="ArgumentException">An unsupported beta_schedule (the message lists the supported ones) or
    /// betas outside (0, 1).</exception>
    public static NoiseSchedule FromConfig(SchedulerConfig c, string? configFile = null)
    {
        ArgumentNullException.ThrowIfNull(c);
        c.Validate();
        NoiseSchedule s;
        if (c.TrainedBetas is not null) s = FromBetas(c.TrainedBetas);
        else
        {
            s = c.BetaSchedule switch
            {
                "linear" => Linear(c.NumTrainTimesteps, c.BetaStart, c.BetaEnd),
                "scaled_linear" => ScaledLinear(c.NumTrainTimesteps, c.BetaStart, c.BetaEnd),
                "squaredcos_cap_v2" => SquaredCosCapV2(c.NumTrainTimesteps),
                _ => throw new ArgumentException(
                    $"beta_schedule '{c.BetaSchedule}' is not supported; expected one of: {string.Join(", ", SchedulerConfig.SupportedBetaSchedules)}", nameof(c)),
            };
        }
        return new NoiseSchedule(c.RescaleBetasZeroSnr ? s.RescaledToZeroTerminalSnr() : s, c, configFile);
    }

    /// <summary>Reads a scheduler_config.json (<see cref="SchedulerConfig.Load"/>) and builds its schedule (<see cref="FromConfig"/>).</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The file is malformed; the message names it and the field.</exception>
    public static NoiseSchedule Load(string path) => FromConfig(SchedulerConfig.Load(path), path);

    /// <summary>diffusers' "linear": torch.linspace(betaStart, betaEnd, T, dtype=float32) (Ho et al. 2020).</summary>
    public static NoiseSchedule Linear(int T, double betaStart, double betaEnd)
    {
        RequireT(T);
        return Checked(TorchFloat32.Linspace(betaStart, betaEnd, T), Invariant($"linear({betaStart}, {betaEnd})"));
    }

    /// <summary>diffusers' "scaled_linear" (latent diffusion): linspace(sqrt(betaStart), sqrt(betaEnd), T) in float32, squared in float32.</summary>
    public static NoiseSchedule ScaledLinear(int T, double betaStart, double betaEnd)
    {
        RequireT(T);
        if (!(betaStart >= 0) || !(betaEnd >= 0))
            throw new ArgumentOutOfRangeException(nameof(betaStart), $"scaled_linear needs non-negative beta_start and beta_end, got {betaStart}, {betaEnd}");
        // Python's beta_start**0.5 is C pow(x, 0.5), as Math.Pow is; torch squares a float32 tensor as x*x.
        var r = TorchFloat32.Linspace(Math.Pow(betaStart, 0.5), Math.Pow(betaEnd, 0.5), T);
        for (int i = 0; i < r.Length; i++) r[i] *= r[i];
        return Checked(r, Invariant($"scaled_linear({betaStart}, {betaEnd})"));
    }

    /// <summary>diffusers' "squaredcos_cap_v2": betas_for_alpha_bar with the cosine alpha_bar of Nichol and Dhariwal 2021
    /// (eq. 17, s = 0.008), beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), 0.999), in double then rounded to float32.</summary>
    public static NoiseSchedule SquaredCosCapV2(int T)
    {
        RequireT(T);
        static double AlphaBar(double t)
        {
            double c = Math.Cos((t + 0.008) / 1.008 * Math.PI / 2);
            return c * c;
        }
        var b = new float[T];
        for (int i = 0; i < T; i++)
        {
            double t1 = (double)i / T, t2 = (double)(i + 1) / T;
            b[i] = (float)Math.Min(1 - AlphaBar(t2) / AlphaBar(t1), 0.999);
        }
        return Checked(b, "squaredcos_cap_v2");
    }

    /// <summary>The learning-rate schedule of Li et al. 2024 ("Accelerating Convergence of Score-Based Diffusion
    /// Models, Provably", ICML 2024), computed in double.</summary>
    /// <remarks>
    /// As written in the talk (papers/chi-2024-diffusion-models-talk.txt, "Non-asymptotic complexity of generation"):
    ///   "Learning rates: for some large constants $c_0, c_1 > 0$,"
    ///   "$$\beta_1 = \frac{1}{T^{c_0}}$$"
    ///   "$$\beta_t = \frac{c_1 \log T}{T} \min\left\{\beta_1 \left(1 + \frac{c_1 \log T}{T}\right)^t, 1\right\}$$"
    /// and "$\overline{\alpha}_t \coloneqq \prod_{k=1}^t \alpha_k$ with $\alpha_t = 1 - \beta_t$". The second line is
    /// used for t = 2..T (t = 1 is the first line); log is the natural logarithm. Paper step t = 1..T is array index
    /// t - 1, so diffusers-style timestep k is the paper's t = k + 1. Betas, alphas and alpha_bar are computed in
    /// double; the float arrays are those values rounded, and <see cref="AlphasCumprodDouble"/> keeps the double products.
    /// </remarks>
    /// <exception cref="ArgumentException">c0 or c1 not positive, or some beta_t outside (0, 1) (e.g. c1 log T / T >= 1,
    /// which happens for small T or large c1); the message names t.</exception>
    public static NoiseSchedule LiEtAl(int T, double c0, double c1)
    {
        RequireT(T);
        if (!(c0 > 0) || !(c1 > 0) || !double.IsFinite(c0) || !double.IsFinite(c1))
            throw new ArgumentOutOfRangeException(nameof(c0), $"Li et al. schedule needs finite c0 > 0 and c1 > 0, got c0 = {c0}, c1 = {c1}");
        double beta1 = Math.Pow(T, -c0);
        double rate = c1 * Math.Log(T) / T;
        var betas = new double[T];
        betas[0] = beta1;
        for (int t = 2; t <= T; t++)
            betas[t - 1] = rate * Math.Min(beta1 * Math.Pow(1 + rate, t), 1.0);
        var alphas = new double[T];
        var bar = new double[T];
        double acc = 1.0;
        for (int k = 0; k < T; k++)
        {
            if (!(betas[k] > 0 && betas[k] < 1))
                throw new ArgumentException(
                    $"Li et al. schedule with T = {T}, c0 = {c0}, c1 = {c1} gives beta_{k + 1} = {betas[k]}, outside (0, 1)", nameof(c1));
            alphas[k] = 1 - betas[k];
            acc *= alphas[k];
            bar[k] = acc;
        }
        var f = Array.ConvertAll(betas, b => (float)b);
        for (int k = 0; k < T; k++)
        {
            // A beta below 2^-150 or above 1 - 2^-25 rounds to 0 or 1 in float32; the float view must stay usable.
            if (!(f[k] > 0 && f[k] < 1))
                throw new ArgumentException(
                    $"Li et al. schedule with T = {T}, c0 = {c0}, c1 = {c1} gives beta_{k + 1} = {betas[k]}, which is 0 or 1 in float32", nameof(c0));
        }
        return new NoiseSchedule(f, Invariant($"li_et_al(T={T}, c0={c0}, c1={c1})"), alphas, bar);
    }

    /// <summary>A schedule with the given alphas_cumprod (kept in double; alphas are their ratios, betas 1 - alphas), for
    /// analytic priors and tests whose noise levels are defined by alpha_bar itself, e.g. alpha_bar(t) = 1 - t / T.
    /// Unlike the diffusers schedules it may start at alpha_bar 1 (beta 0) and end at alpha_bar 0 (beta 1).</summary>
    /// <exception cref="ArgumentException">Empty, a value outside [0, 1], an increase, or a 0 before the last entry
    /// (the next alpha would be 0 / 0); the message names the index.</exception>
    public static NoiseSchedule FromAlphasCumprod(IReadOnlyList<double> alphasCumprod, string name = "alphas_cumprod")
    {
        ArgumentNullException.ThrowIfNull(alphasCumprod);
        RequireT(alphasCumprod.Count);
        int T = alphasCumprod.Count;
        var bar = new double[T];
        var alphas = new double[T];
        for (int k = 0; k < T; k++)
        {
            double a = alphasCumprod[k], before = k == 0 ? 1.0 : bar[k - 1];
            if (!(a >= 0 && a <= before))
                throw new ArgumentException($"{name}: alphas_cumprod[{k}] = {a} must lie in [0, {before}] (non-increasing from 1)", nameof(alphasCumprod));
            if (before == 0)
                throw new ArgumentException($"{name}: alphas_cumprod[{k - 1}] is 0 before the last timestep", nameof(alphasCumprod));
            bar[k] = a;
            alphas[k] = a / before;
        }
        var betas = Array.ConvertAll(alphas, a => (float)(1 - a));
        return new NoiseSchedule(betas, name, alphas, bar);
    }

    /// <summary>A schedule from explicit betas (diffusers' trained_betas: each value rounded to float32).</summary>
    /// <exception cref="ArgumentException">Empty, or a beta outside (0, 1).</exception>
    public static NoiseSchedule FromBetas(ReadOnlySpan<double> betas)
    {
        RequireT(betas.Length);
        var f = new float[betas.Length];
        for (int i = 0; i < f.Length; i++) f[i] = (float)betas[i];
        return Checked(f, "trained_betas");
    }

    /// <summary>Zero-terminal-SNR rescaling (Lin et al. 2023, Algorithm 1), as diffusers' rescale_zero_terminal_snr in float32.</summary>
    /// <remarks>The last beta becomes exactly 1 (alpha_bar_T = 0), so the last timestep is pure noise. Agrees with
    /// diffusers to one float32 ulp, not bit for bit: torch's vectorised float sqrt (AVX512) is not always
    /// correctly rounded, and about 1% of its rescaled betas differ from these (correctly rounded) ones by an ulp.</remarks>
    public NoiseSchedule RescaledToZeroTerminalSnr()
    {
        int T = NumTrainTimesteps;
        if (T < 2) throw new InvalidOperationException("zero-terminal-SNR rescaling needs at least 2 timesteps");
        var s = new float[T];
        for (int i = 0; i < T; i++) s[i] = MathF.Sqrt(AlphasCumprod[i]);
        float s0 = s[0], sT = s[T - 1];
        float scale = s0 / (s0 - sT);
        for (int i = 0; i < T; i++) s[i] = (s[i] - sT) * scale;
        var bar = new float[T];
        for (int i = 0; i < T; i++) bar[i] = s[i] * s[i];
        var b = new float[T];
        b[0] = 1f - bar[0];
        for (int i = 1; i < T; i++) b[i] = 1f - bar[i] / bar[i - 1];
        return new NoiseSchedule(b, Name + "+zero_snr");
    }

    /// <summary>diffusers' DDIMScheduler/DDPMScheduler.set_timesteps(numInferenceSteps): descending timesteps.</summary>
    /// <exception cref="ArgumentException">numInferenceSteps &gt; T (as diffusers), an unknown spacing (the message lists
    /// the supported ones), or a steps_offset that pushes a timestep past T - 1.</exception>
    /// <remarks>See <see cref="TimestepSpacing.Ddim"/>, including the one case where we drop diffusers' spurious -1.</remarks>
    public int[] Timesteps(int numInferenceSteps, string spacing = "leading", int stepsOffset = 0) =>
        TimestepSpacing.Ddim(NumTrainTimesteps, numInferenceSteps, spacing, stepsOffset);

    /// <summary>DDIM's previous timestep, timestep - T // numInferenceSteps (DDIMScheduler.step, stage 1), for every spacing.</summary>
    public int PreviousTimestep(int timestep, int numInferenceSteps)
    {
        RequireTimestep(timestep);
        if (numInferenceSteps < 1 || numInferenceSteps > NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(numInferenceSteps), numInferenceSteps, $"must be in [1, {NumTrainTimesteps}]");
        return timestep - NumTrainTimesteps / numInferenceSteps;
    }

    /// <summary>alpha_bar at timestep index t (double view of <see cref="AlphasCumprod"/>).</summary>
    public double AlphaCumprod(int t)
    {
        RequireTimestep(t);
        return AlphasCumprodDouble[t];
    }

    /// <summary>DDIM's alpha_prod_t_prev: alphas_cumprod[prev] for prev &gt;= 0, else final_alpha_cumprod
    /// (1 when setAlphaToOne, else alphas_cumprod[0]).</summary>
    public double AlphaCumprodPrev(int prevTimestep, bool setAlphaToOne = true)
    {
        if (prevTimestep >= NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(prevTimestep), prevTimestep, $"must be below num_train_timesteps {NumTrainTimesteps}");
        if (prevTimestep >= 0) return AlphasCumprodDouble[prevTimestep];
        return setAlphaToOne ? 1.0 : AlphasCumprodDouble[0];
    }

    /// <summary>sqrt((1 - a_t) / a_t): the noise level of the equivalent variance-exploding process x / sqrt(a_t)
    /// (Karras et al. 2022, Table 1; diffusers' sigmas, here in double).</summary>
    public double Sigma(int t)
    {
        RequireTimestep(t);
        double a = AlphasCumprodDouble[t];
        return Math.Sqrt((1 - a) / a);
    }

    private void RequireTimestep(int t)
    {
        if ((uint)t >= (uint)NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(t), t, $"timestep must be in [0, {NumTrainTimesteps - 1}]");
    }

    private static void RequireT(int T)
    {
        if (T < 1) throw new ArgumentOutOfRangeException(nameof(T), T, "the number of training timesteps must be at least 1");
    }

    private static NoiseSchedule Checked(float[] betas, string name)
    {
        for (int i = 0; i < betas.Length; i++)
        {
            if (!(betas[i] > 0 && betas[i] < 1))
                throw new ArgumentException($"{name}: beta at timestep {i} is {betas[i]}, outside (0, 1)", nameof(betas));
        }
        return new NoiseSchedule(betas, name);
    }
}
