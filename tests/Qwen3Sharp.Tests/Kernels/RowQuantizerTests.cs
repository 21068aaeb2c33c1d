using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// The vector Q8_0 / Q4_0 row quantizers of <c>--quantize</c> write the bytes of their scalar twins (llama.cpp's reference
/// rounding, which LoadQuantizationTests pin against the converter's files) on every block, the edge cases included.
/// </summary>
public sealed unsafe class RowQuantizerTests
{
    public static TheoryData<string> Cases => ["random", "wide", "halves", "ties", "zeros", "negative zero first", "one element", "non-finite", "subnormal"];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Q8_0_WritesTheScalarTwinsBytes(string kind) => Compare(kind, q8: true);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Q4_0_WritesTheScalarTwinsBytes(string kind) => Compare(kind, q8: false);

    private static void Compare(string kind, bool q8)
    {
        float[] x = Row(kind, blocks: 24);
        int blockBytes = q8 ? 34 : 18;
        byte[] expected = new byte[x.Length / 32 * blockBytes], actual = new byte[expected.Length];
        fixed (float* px = x)
        fixed (byte* e = expected, a = actual)
        {
            if (q8)
            {
                QuantScalar.QuantizeRowQ8_0(px, x.Length, e);
                RowQuantizer.Q8_0(px, x.Length, a);
            }
            else
            {
                QuantScalar.QuantizeRowQ4_0(px, x.Length, e);
                RowQuantizer.Q4_0(px, x.Length, a);
            }
        }

        int at = expected.AsSpan().CommonPrefixLength(actual);
        Assert.True(at == expected.Length, $"{kind}: block {at / blockBytes} differs at byte {at % blockBytes}");
    }

    /// <summary>24 blocks of 32 of one kind of content.</summary>
    private static float[] Row(string kind, int blocks)
    {
        var random = new Random(kind.GetHashCode(StringComparison.Ordinal) & 0xFFFF);
        var x = new float[blocks * 32];
        for (int b = 0; b < blocks; b++)
        {
            Span<float> v = x.AsSpan(b * 32, 32);
            float magnitude = MathF.Pow(10, random.Next(-6, 6));
            for (int j = 0; j < 32; j++)
            {
                v[j] = (float)(random.NextDouble() * 2 - 1) * magnitude;
            }

            switch (kind)
            {
                case "wide":           // one outlier per block, the rest tiny: codes of 0 and ±1 next to ±127
                    v[random.Next(32)] = 1e4f * (random.Next(2) * 2 - 1);
                    break;
                case "halves":         // x·id lands on k + 0.5 (Q8_0: amax 127, so id = 1; Q4_0: max −8, so id = 1)
                    for (int j = 0; j < 32; j++)
                    {
                        v[j] = random.Next(-126, 127) + 0.5f * (random.Next(2) * 2 - 1);
                    }

                    v[random.Next(32)] = b % 2 == 0 ? 127 : -8;
                    break;
                case "ties":           // the largest magnitude twice, with both signs: the first one sets Q4_0's sign
                    int first = random.Next(31), second = random.Next(first + 1, 32);
                    v[first] = 3 * magnitude * (b % 2 == 0 ? 1 : -1);
                    v[second] = -v[first];
                    break;
                case "zeros":
                    v.Clear();
                    break;
                case "negative zero first":
                    v.Clear();
                    v[0] = -0f;
                    v[b % 32] = b % 3 == 0 ? -0f : 0f;
                    break;
                case "one element":
                    v.Clear();
                    v[b % 32] = (b % 2 == 0 ? 1 : -1) * magnitude;
                    break;
                case "non-finite":     // a NaN or an infinity in some blocks: the scalar twin decides those blocks
                    v[random.Next(32)] = (b % 4) switch { 0 => float.NaN, 1 => float.PositiveInfinity, 2 => float.NegativeInfinity, _ => v[0] };
                    break;
                case "subnormal":
                    for (int j = 0; j < 32; j++)
                    {
                        v[j] = BitConverter.Int32BitsToSingle(random.Next(1, 1 << 23)) * (random.Next(2) * 2 - 1);
                    }

                    break;
            }
        }

        return x;
    }
}
