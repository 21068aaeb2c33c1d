using Qwen3Sharp.Kernels;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

public sealed class AllocationTests
{
    [Fact]
    public void Kernels_AfterWarmUp_AllocateNothingOnTheCallingThread()
    {
        using var pool = new WorkerPool(2);
        var rng = new Random(9);
        using var w = new TestWeights(rng, DType.BF16, 96, 128);
        float[] x = KernelAssert.Random(rng, 40 * 128), y = new float[40 * 96];
        float[] norm = KernelAssert.Random(rng, 128);
        float[] q = KernelAssert.Random(rng, 3 * 4 * 32), kv = KernelAssert.Random(rng, 10 * 2 * 32), att = new float[3 * 4 * 32];
        float[] invFreq = KernelAssert.Random(rng, 16);
        int[] positions = [7, 8, 9], ids = [1, 5, 9];
        float[] ropeTable = new float[3 * 32];

        void Step()
        {
            MatMul.Multiply(pool, x, 1, w.View, y);
            MatMul.MultiplyAdd(pool, x, 3, w.View, y);
            MatMul.Multiply(pool, x, 40, w.View, y);
            RmsNorm.Apply(x.AsSpan(0, 256), norm, 1e-6f, y);
            RmsNorm.ApplyPerHead(q, norm.AsSpan(0, 32), 1e-6f);
            Rope.Apply(q, 4, 32, positions, invFreq, 1f);
            Rope.FillTable(positions, invFreq, 32, 1f, ropeTable);
            Rope.Rotate(q, 4, 32, ropeTable);
            SwiGlu.SiluMul(x.AsSpan(0, y.Length), x.AsSpan(0, y.Length), y);
            Softmax.Apply(y);
            Attention.Causal(pool, q, 3, 7, kv, kv, 4, 2, 32, 0.2f, att);
            Embedding.Gather(w.View, ids, y);
        }

        Step();
        Assert.Equal(0, Allocations.Fewest(() =>
        {
            for (int i = 0; i < 20; i++)
            {
                Step();
            }
        }));
    }
}
