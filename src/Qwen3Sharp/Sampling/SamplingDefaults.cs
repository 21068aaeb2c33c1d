namespace Qwen3Sharp.Sampling;

/// <summary>The sampling fields of a checkpoint's <c>generation_config.json</c> (null = absent).</summary>
public sealed record ModelSamplingDefaults
{
    public bool? DoSample { get; init; }
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? TopK { get; init; }
    public float? MinP { get; init; }
    public float? RepetitionPenalty { get; init; }
    public float? PresencePenalty { get; init; }
    public float? FrequencyPenalty { get; init; }
}

/// <summary>
/// Qwen3's recommended sampling per mode (model card): thinking T=0.6, top_p 0.95, top_k 20, min_p 0;
/// non-thinking T=0.7, top_p 0.8, top_k 20, min_p 0.
/// </summary>
/// <remarks>
/// Precedence, field by field: request &gt; Qwen mode defaults &gt; generation_config.json &gt; neutral.
/// The mode defaults beat generation_config for temperature/top_p/top_k/min_p because Qwen3's
/// generation_config.json carries the thinking-mode values only, so letting it win would give non-thinking
/// requests thinking-mode sampling. generation_config supplies the penalties, and <c>do_sample: false</c>
/// there means greedy (HF semantics). Pass <c>modelDefaultsWin: true</c> for a fine-tune whose
/// generation_config should win over Qwen's table. The request layer is applied by the caller with
/// <c>with { … }</c> on the result.
/// </remarks>
public static class SamplingDefaults
{
    public static SamplingParams ForMode(bool thinking) => thinking
        ? new SamplingParams { Temperature = 0.6f, TopP = 0.95f, TopK = 20, MinP = 0f }
        : new SamplingParams { Temperature = 0.7f, TopP = 0.8f, TopK = 20, MinP = 0f };

    public static SamplingParams Resolve(bool thinking, ModelSamplingDefaults? model = null, bool modelDefaultsWin = false)
    {
        SamplingParams mode = ForMode(thinking);
        if (model is null)
        {
            return mode;
        }

        SamplingParams merged = mode with
        {
            RepetitionPenalty = model.RepetitionPenalty ?? mode.RepetitionPenalty,
            PresencePenalty = model.PresencePenalty ?? mode.PresencePenalty,
            FrequencyPenalty = model.FrequencyPenalty ?? mode.FrequencyPenalty,
        };

        if (modelDefaultsWin)
        {
            merged = merged with
            {
                Temperature = model.Temperature ?? merged.Temperature,
                TopP = model.TopP ?? merged.TopP,
                TopK = model.TopK ?? merged.TopK,
                MinP = model.MinP ?? merged.MinP,
            };
        }

        return model.DoSample == false ? merged with { Temperature = 0f } : merged;
    }
}
