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

    /// <summary>
    /// llama.cpp's Q8_0 (its <c>-ctk q8_0 -ctv q8_0</c>): blocks of 32 elements, an f16 scale amax/127 and 32 int8 codes
    /// rounded to nearest even, 34 bytes (1.0625 per element, 0.53x f16). Blocks never straddle heads: head_dim must be a
    /// multiple of 32.
    /// </summary>
    Q8_0,
}

public static class KvCacheDTypes
{
    /// <summary>
    /// The default: f16, half the memory of float32 and 6-9x less logit drift than bf16 on the golden models (11 bits
    /// of mantissa against 8; README, "KV cache dtype"). Qwen3's keys are RMS-normalised per head, far inside f16's range.
    /// </summary>
    public const KvCacheDType Default = KvCacheDType.F16;

    /// <summary>Elements per Q8_0 block (and the multiple of head_dim that <see cref="KvCacheDType.Q8_0"/> needs).</summary>
    public const int Q8BlockSize = 32;

    /// <summary>Bytes of one Q8_0 block: an f16 scale and 32 codes.</summary>
    public const int Q8BlockBytes = 2 + Q8BlockSize;

    /// <summary>
    /// Bytes that <paramref name="elements"/> stored elements take (a row, a head): 4, 2 or 2 bytes each, or for Q8_0
    /// 34 bytes per block of 32 (<paramref name="elements"/> must then be a multiple of 32).
    /// </summary>
    public static long Bytes(this KvCacheDType dtype, long elements) => dtype switch
    {
        KvCacheDType.F32 => 4 * elements,
        KvCacheDType.BF16 or KvCacheDType.F16 => 2 * elements,
        KvCacheDType.Q8_0 when elements % Q8BlockSize == 0 => elements / Q8BlockSize * Q8BlockBytes,
        KvCacheDType.Q8_0 => throw new ArgumentException($"q8_0 stores blocks of {Q8BlockSize} elements; {elements} is not a multiple", nameof(elements)),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown KV-cache dtype"),
    };

    /// <summary>
    /// Null when a model with heads of <paramref name="headDim"/> can store its cache as <paramref name="dtype"/>,
    /// otherwise why not (Q8_0 blocks of 32 must not straddle heads).
    /// </summary>
    public static string? Unsupported(this KvCacheDType dtype, int headDim)
        => dtype == KvCacheDType.Q8_0 && headDim % Q8BlockSize != 0
            ? $"--kv-cache-dtype q8_0 needs head_dim to be a multiple of {Q8BlockSize}; this model's is {headDim}"
            : null;

    /// <summary>The command-line spelling: f32, bf16, f16, q8_0.</summary>
    public static string Name(this KvCacheDType dtype) => dtype switch
    {
        KvCacheDType.F32 => "f32",
        KvCacheDType.BF16 => "bf16",
        KvCacheDType.F16 => "f16",
        KvCacheDType.Q8_0 => "q8_0",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown KV-cache dtype"),
    };

    /// <summary>Parses f32|float32|bf16|bfloat16|f16|fp16|float16|q8_0 (case-insensitive); false for anything else.</summary>
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
            case "q8_0" or "q8":
                dtype = KvCacheDType.Q8_0;
                return true;
            default:
                dtype = default;
                return false;
        }
    }
}
