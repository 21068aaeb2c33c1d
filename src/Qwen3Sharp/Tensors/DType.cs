namespace Qwen3Sharp.Tensors;

/// <summary>Element types of stored weights (safetensors names: F32, F16, BF16).</summary>
public enum DType
{
    F32,
    F16,
    BF16,
}

public static class DTypeExtensions
{
    public static int ByteSize(this DType dtype) => dtype switch
    {
        DType.F32 => 4,
        DType.F16 => 2,
        DType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };
}
