using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Model;

/// <summary>
/// RoPE inverse frequencies and attention scaling for a config, as transformers' <c>ROPE_INIT_FUNCTIONS</c>
/// compute them: default, <c>linear</c> (frequencies divided by factor) and <c>yarn</c>
/// (<c>_compute_yarn_parameters</c>: correction range from beta_fast/beta_slow, linear ramp blending interpolated and
/// extrapolated frequencies, attention factor 0.1·ln(factor)+1 unless given).
/// </summary>
public sealed class RotaryEmbedding
{
    private RotaryEmbedding(float[] inverseFrequencies, float attentionScaling)
    {
        InverseFrequencies = inverseFrequencies;
        AttentionScaling = attentionScaling;
    }

    /// <summary>[headDim / 2]</summary>
    public float[] InverseFrequencies { get; }

    /// <summary>Multiplies cos and sin (1 except YaRN).</summary>
    public float AttentionScaling { get; }

    public static RotaryEmbedding Create(Qwen3Config config)
    {
        int dim = config.HeadDim;
        double theta = config.RopeTheta;
        var inv = new float[dim / 2];
        RopeScaling? scaling = config.RopeScaling;
        switch (scaling?.Kind ?? "default")
        {
            case "default":
                for (int i = 0; i < inv.Length; i++)
                {
                    inv[i] = (float)(1.0 / Math.Pow(theta, 2.0 * i / dim));
                }

                return new RotaryEmbedding(inv, 1f);

            case "linear":
                double linearFactor = scaling!.Factor!.Value;
                for (int i = 0; i < inv.Length; i++)
                {
                    inv[i] = (float)(1.0 / Math.Pow(theta, 2.0 * i / dim) / linearFactor);
                }

                return new RotaryEmbedding(inv, 1f);

            case "yarn":
                return Yarn(config, scaling!);

            default:
                throw new ModelFormatException(config.SourceFile, "rope_scaling", $"unsupported rope type '{scaling!.Kind}'");
        }
    }

    private static RotaryEmbedding Yarn(Qwen3Config config, RopeScaling s)
    {
        int dim = config.HeadDim;
        double theta = config.RopeTheta;
        double factor = s.Factor!.Value;
        int originalMax = s.OriginalMaxPositionEmbeddings ?? config.MaxPositionEmbeddings;

        double attentionFactor = s.AttentionFactor
            ?? (s.Mscale is { } m && m != 0 && s.MscaleAllDim is { } mad && mad != 0
                ? GetMscale(factor, m) / GetMscale(factor, mad)
                : GetMscale(factor, 1));

        double betaFast = s.BetaFast ?? 32;
        double betaSlow = s.BetaSlow ?? 1;
        double low = CorrectionDim(betaFast, dim, theta, originalMax);
        double high = CorrectionDim(betaSlow, dim, theta, originalMax);
        if (s.Truncate ?? true)
        {
            low = Math.Floor(low);
            high = Math.Ceiling(high);
        }

        low = Math.Max(low, 0);
        high = Math.Min(high, dim - 1);
        if (low == high)
        {
            high += 0.001;   // avoid a zero-width ramp
        }

        var inv = new float[dim / 2];
        for (int i = 0; i < inv.Length; i++)
        {
            double posFreq = Math.Pow(theta, 2.0 * i / dim);
            double extrapolation = 1.0 / posFreq;
            double interpolation = 1.0 / (factor * posFreq);
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
            double extrapolationWeight = 1 - ramp;
            inv[i] = (float)(interpolation * (1 - extrapolationWeight) + extrapolation * extrapolationWeight);
        }

        return new RotaryEmbedding(inv, (float)attentionFactor);
    }

    private static double GetMscale(double scale, double mscale) => scale <= 1 ? 1.0 : 0.1 * mscale * Math.Log(scale) + 1.0;

    /// <summary>The dimension whose wavelength makes <paramref name="rotations"/> turns over the original context.</summary>
    private static double CorrectionDim(double rotations, int dim, double theta, int maxPositions)
        => dim * Math.Log(maxPositions / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
}
