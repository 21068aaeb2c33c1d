using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Jit;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// The generated Q8_0x8 token-pair tiles (512-bit <c>vpdpbusd</c>): the bytes disassemble (binutils objdump) to the
/// intended instructions on any machine; where the CPU has AVX512_VNNI the products take them and give every token the
/// bits of its decode product (also <see cref="Q4x8MatMulTests.Prefill_Int8TokenTiles_GiveEachTokenItsDecodeBits"/>).
/// </summary>
public sealed unsafe class Q8PairJitTests
{
    [ObjdumpTheory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(16)]
    public void Generate_Kernel_DisassemblesToTheIntendedInstructions(int pairs)
    {
        const int prefetch = 6144;
        List<(long Address, string Text)> actual = Bf16JitTests.Disassemble(Q8PairKernels.Generate(pairs, prefetch));
        var x = new List<string>
        {
            "mov rax,QWORD PTR [rdi]", "mov rcx,QWORD PTR [rdi+0x8]", "mov rdx,QWORD PTR [rdi+0x10]", "mov rsi,QWORD PTR [rdi+0x18]",
            "mov r8,QWORD PTR [rdi+0x20]", "mov r9,QWORD PTR [rdi+0x28]", "vmovups zmm25,ZMMWORD PTR [rdi+0x40]",
            "vpbroadcastd zmm26,DWORD PTR [rdi+0x30]",
        };
        for (int p = 0; p < pairs; p++)
        {
            x.Add($"vpxord zmm{p},zmm{p},zmm{p}");
        }

        x.Add("test rcx,rcx");
        int jz = x.Count;
        x.Add("je ?");
        int loopIndex = x.Count;
        for (int line = 0; line < 4; line++)
        {
            x.Add($"prefetcht0 BYTE PTR [rax+0x{16 + prefetch + 64 * line:x}]");
        }

        x.Add("vcvtph2ps ymm27,XMMWORD PTR [rax]");
        x.Add("vpermps zmm24,zmm25,zmm27");
        for (int j = 0; j < 8; j++)
        {
            x.Add($"vbroadcasti64x4 zmm{16 + j},YMMWORD PTR [rax+0x{16 + 32 * j:x}]");
            x.Add($"vpermd zmm{16 + j},zmm25,zmm{16 + j}");
            x.Add($"vpxord zmm{16 + j},zmm{16 + j},zmm26");
        }

        for (int p = 0; p < pairs; p++)
        {
            x.Add("vpxord zmm28,zmm28,zmm28");
            x.Add("vpxord zmm29,zmm29,zmm29");
            for (int j = 0; j < 8; j++)
            {
                int offset = 64 * p + 8 * j, bcast = 30 + (j & 1);
                x.Add(offset == 0 ? $"vpbroadcastq zmm{bcast},QWORD PTR [rdx]" : $"vpbroadcastq zmm{bcast},QWORD PTR [rdx+0x{offset:x}]");
                x.Add($"vpdpbusd zmm{28 + (j & 1)},zmm{16 + j},zmm{bcast}");
            }

            x.Add("vpaddd zmm28,zmm28,zmm29");
            x.Add(p == 0 ? "vpbroadcastq zmm29,QWORD PTR [r8]" : $"vpbroadcastq zmm29,QWORD PTR [r8+0x{8 * p:x}]");
            x.Add("vpsubd zmm28,zmm28,zmm29");
            x.Add("vcvtdq2ps zmm28,zmm28");
            x.Add(p == 0 ? "vbroadcastsd zmm29,QWORD PTR [rsi]" : $"vbroadcastsd zmm29,QWORD PTR [rsi+0x{8 * p:x}]");
            x.Add("vmulps zmm29,zmm24,zmm29");
            x.Add($"vfmadd231ps zmm{p},zmm28,zmm29");
        }

        x.Add("add rax,0x110");
        x.Add($"add rdx,0x{64 * pairs:x}");
        x.Add($"add rsi,0x{8 * pairs:x}");
        x.Add($"add r8,0x{8 * pairs:x}");
        x.Add("dec rcx");
        x.Add("jne ?");
        int doneIndex = x.Count;
        for (int p = 0; p < pairs; p++)
        {
            x.Add(p == 0 ? "vmovups ZMMWORD PTR [r9],zmm0" : $"vmovups ZMMWORD PTR [r9+0x{64 * p:x}],zmm{p}");
        }

        x.Add("vzeroupper");
        x.Add("ret");
        if (actual.Count == x.Count)
        {
            x[jz] = $"je 0x{actual[doneIndex].Address:x}";
            x[doneIndex - 1] = $"jne 0x{actual[loopIndex].Address:x}";
        }

        Assert.Equal(x, actual.Select(i => Regex.Replace(i.Text, @" <.*>$", "")));
    }

    [Fact]
    public void Generate_RefusesPairCountsOutsideOneToSixteen()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Q8PairKernels.Generate(0, 6144));
        Assert.Throws<ArgumentOutOfRangeException>(() => Q8PairKernels.Generate(Q8PairKernels.MaxPairs + 1, 6144));
    }

    [Fact]
    public void Args_FieldsSitWhereTheGeneratedCodeReadsThem()
    {
        Assert.Equal(Q8PairArgs.GroupOffset, (int)Marshal.OffsetOf<Q8PairArgs>(nameof(Q8PairArgs.Group)));
        Assert.Equal(Q8PairArgs.BlocksOffset, (int)Marshal.OffsetOf<Q8PairArgs>(nameof(Q8PairArgs.Blocks)));
        Assert.Equal(Q8PairArgs.XOffset, (int)Marshal.OffsetOf<Q8PairArgs>(nameof(Q8PairArgs.X)));
        Assert.Equal(Q8PairArgs.XsOffset, (int)Marshal.OffsetOf<Q8PairArgs>(nameof(Q8PairArgs.Xs)));
        Assert.Equal(Q8PairArgs.XsumOffset, (int)Marshal.OffsetOf<Q8PairArgs>(nameof(Q8PairArgs.Xsum)));
        Assert.Equal(Q8PairArgs.AccOffset, (int)Marshal.OffsetOf<Q8PairArgs>(nameof(Q8PairArgs.Acc)));
        Assert.Equal(Q8PairArgs.SignsOffset, (int)Marshal.OffsetOf<Q8PairArgs>(nameof(Q8PairArgs.Signs)));
        Assert.Equal(Q8PairArgs.IndexOffset, (int)Marshal.OffsetOf<Q8PairArgs>(nameof(Q8PairArgs.Index)));
        Q8PairArgs a = Q8PairArgs.Create(null, 3, null, null, null, null);
        Assert.Equal(unchecked((int)0x80808080), a.Signs);
        var index = new int[16];
        for (int i = 0; i < 16; i++)
        {
            index[i] = a.Index[i];
        }

        Assert.Equal(Enumerable.Range(0, 16).Select(i => i / 2), index);
    }

    [Q8JitFact]
    public void OnAnAvx512VnniCpu_Q8_0ProductsOfSeveralTokensTakeTheGeneratedTiles_WithEachTokensDecodeBits()
    {
        // where the generated tiles can run they are the default (QWEN3_JIT_Q8 unset), and a 40-token product (32 + 8: a
        // full tile of 16 pairs, then 4) gives every token the bits of its one-token product
        Assert.NotNull(QuantMatMul.Q8PairJit);
        const int rows = 8 * 5 + 3, cols = 8 * 32;
        using var pool = new WorkerPool(2);
        byte* source = Q4x8MatMulTests.Source(DType.Q8_0, rows, cols, 11);
        byte* packed = Q4x8MatMulTests.Repacked(DType.Q8_0, source, rows, cols);
        try
        {
            var w = new WeightView(packed, DType.Q8_0x8, rows, cols);
            const int tokens = 40;
            float[] x = Int8MatMulTests.Activations(new Random(5), tokens * cols);
            var batch = new float[tokens * rows];
            MatMul.Multiply(pool, x, tokens, w, batch, PrefillKernel.Managed, QuantDecodeKernel.Int8);
            for (int t = 0; t < tokens; t++)
            {
                var alone = new float[rows];
                MatMul.Multiply(pool, x.AsSpan(t * cols, cols), 1, w, alone, PrefillKernel.Managed, QuantDecodeKernel.Int8);
                Assert.Equal(alone, batch.AsSpan(t * rows, rows).ToArray());
            }
        }
        finally
        {
            NativeMemory.AlignedFree(source);
            NativeMemory.AlignedFree(packed);
        }
    }
}

/// <summary>A fact that runs the generated Q8_0 pair tiles; skipped where the CPU (or the runtime's ISA switches) lack AVX512_VNNI.</summary>
public sealed class Q8JitFactAttribute : FactAttribute
{
    public Q8JitFactAttribute()
    {
        if (!Q8PairKernels.IsSupported || Environment.GetEnvironmentVariable("QWEN3_JIT_Q8") == "0")
        {
            Skip = "needs Linux x86-64 with AVX512F, AVX512BW and AVX512_VNNI (Zen 4, Zen 5, Intel since Ice Lake), and QWEN3_JIT_Q8 not 0";
        }
    }
}
