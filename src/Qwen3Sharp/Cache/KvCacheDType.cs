namespace Qwen3Sharp.Cache;

/// <summary>How the KV cache stores keys and values (--kv-cache-dtype). Attention always computes in float32.</summary>
public enum KvCacheDType
{
    /// <summary>float32: exact, 4 bytes per element.</summary>
    F32,

    /// <summary>bfloat16 (round to nearest even on write, a shift on read): 2 bytes, float32's range, 8 bits of mantissa.</summary>
    BF16,

    /// <summary>IEEE half (round to nearest even on write): 2 bytes, 11 bits of mantissa, magnitudes up to 65504.</summary>
    F16,
}

public static class KvCacheDTypes
{
    /// <summary>
    /// The default: f16, half the memory of float32 and 6-9x less logit drift than bf16 on the golden models (11 bits
    /// of mantissa against 8; README, "KV cache dtype"). Qwen3's keys are RMS-normalised per head, far inside f16's range.
    /// </summary>
    public const KvCacheDType Default = KvCacheDType.F16;

    /// <summary>Bytes per stored element.</summary>
    public static int ElementBytes(this KvCacheDType dtype) => dtype switch
    {
        KvCacheDType.F32 => 4,
        KvCacheDType.BF16 or KvCacheDType.F16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown KV-cache dtype"),
    };

    /// <summary>The command-line spelling: f32, bf16, f16.</summary>
    public static string Name(this KvCacheDType dtype) => dtype switch
    {
        KvCacheDType.F32 => "f32",
        KvCacheDType.BF16 => "bf16",
        KvCacheDType.F16 => "f16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown KV-cache dtype"),
    };

    /// <summary>Parses f32|float32|bf16|bfloat16|f16|fp16|float16 (case-insensitive); false for anything else.</summary>
    public static bool TryParse(string? text, out KvCacheDType dtype)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "f32" or "fp32" or "float32" or "float":
                dtype = KvCacheDType.F32;
                return true;
            case "bf16" or "bfloat16":
                dtype = KvCacheDType.BF16;
                return true;
            case "f16" or "fp16" or "float16" or "half":
                dtype = KvCacheDType.F16;
                return true;
            default:
                dtype = default;
                return false;
        }
    }
}
