namespace PosteriorGpu.Models.Schedules;

/// <summary>What a diffusion model's output means (diffusers' prediction_type).</summary>
public enum PredictionType
{
    /// <summary>"epsilon": the noise added, x = sqrt(a) x0 + sqrt(1-a) eps (Ho et al. 2020).</summary>
    Epsilon,

    /// <summary>"v_prediction": v = sqrt(a) eps - sqrt(1-a) x0 (Salimans and Ho 2022, section 4; Imagen Video, section 2.4).</summary>
    VPrediction,

    /// <summary>"sample": the clean sample x0 itself.</summary>
    Sample,
}
