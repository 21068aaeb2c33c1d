using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Jit;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// The generated Q8_0x8 and Q4_0x8 token-pair tiles (512-bit <c>vpdpbusd</c>): the bytes disassemble (binutils objdump) to the
/// intended instructions on any machine; where the CPU has AVX512_VNNI the products take them and give every token the
/// bits of its decode product (also <see cref="Q4x8MatMulTests.Prefill_Int8TokenTiles_GiveEachTokenItsDecodeBits"/>).
/// </summary>
public sealed unsafe class VnniPairJitTests
{
    [ObjdumpTheory]
    [InlineData(DType.Q8_0, 1)]
    [InlineData(DType.Q8_0, 3)]
    [InlineData(DType.Q8_0, 16)]
    [InlineData(DType.Q4_0, 1)]
    [InlineData(DType.Q4_0, 16)]
    public void Generate_Kernel_DisassemblesToTheIntendedInstructions(DType dtype, int pairs)
    {
        const int prefetch = 6144;
        bool q8 = dtype == DType.Q8_0;
        VnniPairFormat format = q8 ? VnniPairFormat.Q8_0 : VnniPairFormat.Q4_0;
        List<(long Address, string Text)> actual = Bf16JitTests.Disassemble(VnniPairKernels.Generate(format, pairs, prefetch));
        List<string> x =
        [
            .. ArgumentLoads, "vmovups zmm25,ZMMWORD PTR [rdi+0x80]",
            q8 ? "vpbroadcastd zmm26,DWORD PTR [rdi+0x30]" : "vpbroadcastd zmm26,DWORD PTR [rdi+0x34]",
        ];
        for (int p = 0; p < pairs; p++)
        {
            x.Add($"vpxord zmm{p},zmm{p},zmm{p}");
        }

        x.Add("test rcx,rcx");
        int jz = x.Count;
        x.Add("je ?");
        int loopIndex = x.Count;
        for (int line = 0; line < (q8 ? 4 : 2); line++)
        {
            x.Add($"prefetcht0 BYTE PTR [rax+0x{16 + prefetch + 64 * line:x}]");
        }

        x.Add("vcvtph2ps ymm27,XMMWORD PTR [rax]");
        x.Add("vpermps zmm24,zmm25,zmm27");
        x.AddRange(Codes(q8, "rax", 16));

        for (int p = 0; p < pairs; p++)
        {
            x.AddRange(PairDot(p));
            x.Add(p == 0 ? "vpbroadcastq zmm29,QWORD PTR [r8]" : $"vpbroadcastq zmm29,QWORD PTR [r8+0x{8 * p:x}]");
            x.Add("vpsubd zmm28,zmm28,zmm29");
            x.Add("vcvtdq2ps zmm28,zmm28");
            x.Add(p == 0 ? "vbroadcastsd zmm29,QWORD PTR [rsi]" : $"vbroadcastsd zmm29,QWORD PTR [rsi+0x{8 * p:x}]");
            x.Add("vmulps zmm29,zmm24,zmm29");
            x.Add($"vfmadd231ps zmm{p},zmm28,zmm29");
        }

        x.Add(q8 ? "add rax,0x110" : "add rax,0x90");
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

    [ObjdumpTheory]
    [InlineData(1)]
    [InlineData(16)]
    public void Generate_Q4_KKernel_DisassemblesToTheIntendedInstructions(int pairs)
    {
        const int prefetch = 6144, scales = 1024, mins = 1088, d = 1152, dmin = 1168, superBlock = 1184;
        List<(long Address, string Text)> actual = Bf16JitTests.Disassemble(VnniPairKernels.Generate(VnniPairFormat.Q4_K, pairs, prefetch));
        List<string> x =
        [
            .. ArgumentLoads, "vmovups zmm25,ZMMWORD PTR [rdi+0x80]",
            "vpbroadcastd zmm26,DWORD PTR [rdi+0x34]",
        ];
        for (int p = 0; p < pairs; p++)
        {
            x.Add($"vpxord zmm{p},zmm{p},zmm{p}");
        }

        x.Add("test rcx,rcx");
        int jz = x.Count;
        x.Add("je ?");
        int outer = x.Count;
        for (int line = 0; line < 3; line++)
        {
            x.Add($"prefetcht0 BYTE PTR [rax+0x{prefetch + scales + 64 * line:x}]");
        }

        x.AddRange(["lea r11,[rax]", $"lea r10,[rax+0x{scales:x}]", "mov rdi,0x8"]);
        int inner = x.Count;
        x.Add($"prefetcht0 BYTE PTR [r11+0x{prefetch:x}]");
        x.Add($"prefetcht0 BYTE PTR [r11+0x{prefetch + 64:x}]");
        x.Add($"vcvtph2ps ymm27,XMMWORD PTR [rax+0x{d:x}]");
        x.Add("vpermps zmm24,zmm25,zmm27");
        x.Add("vpmovzxbd ymm27,QWORD PTR [r10]");
        x.Add("vcvtdq2ps ymm27,ymm27");
        x.Add("vpermps zmm27,zmm25,zmm27");
        x.Add("vmulps zmm24,zmm24,zmm27");
        x.AddRange(Codes(false, "r11", 0));

        for (int p = 0; p < pairs; p++)
        {
            x.AddRange(PairDot(p));
            x.Add("vcvtdq2ps zmm28,zmm28");
            x.Add($"vbroadcastsd zmm29,QWORD PTR {At("rsi", 8 * p)}");
            x.Add("vmulps zmm29,zmm24,zmm29");
            x.Add($"vfmadd231ps zmm{p},zmm28,zmm29");
        }

        x.AddRange(["add r11,0x80", "add r10,0x8", $"add rdx,0x{64 * pairs:x}", $"add rsi,0x{8 * pairs:x}", "dec rdi"]);
        int innerJump = x.Count;
        x.Add("jne ?");
        for (int sub = 0; sub < 8; sub++)
        {
            x.Add($"vpmovzxbd ymm{16 + sub},QWORD PTR [rax+0x{mins + 8 * sub:x}]");
            x.Add($"vcvtdq2ps ymm{16 + sub},ymm{16 + sub}");
            x.Add($"vpermps zmm{16 + sub},zmm25,zmm{16 + sub}");
        }

        x.Add($"vcvtph2ps ymm27,XMMWORD PTR [rax+0x{dmin:x}]");
        x.Add("vpermps zmm24,zmm25,zmm27");
        for (int p = 0; p < pairs; p++)
        {
            x.Add("vpxord zmm28,zmm28,zmm28");
            for (int sub = 0; sub < 8; sub++)
            {
                x.Add($"vbroadcastsd zmm30,QWORD PTR {At("r8", 8 * (sub * pairs + p))}");
                x.Add($"vfmadd231ps zmm28,zmm{16 + sub},zmm30");
            }

            x.Add($"vfnmadd231ps zmm{p},zmm24,zmm28");
        }

        x.AddRange([$"add r8,0x{64 * pairs:x}", $"add rax,0x{superBlock:x}", "dec rcx"]);
        int outerJump = x.Count;
        x.Add("jne ?");
        int doneIndex = x.Count;
        for (int p = 0; p < pairs; p++)
        {
            x.Add($"vmovups ZMMWORD PTR {At("r9", 64 * p)},zmm{p}");
        }

        x.Add("vzeroupper");
        x.Add("ret");
        if (actual.Count == x.Count)
        {
            x[jz] = $"je 0x{actual[doneIndex].Address:x}";
            x[innerJump] = $"jne 0x{actual[inner].Address:x}";
            x[outerJump] = $"jne 0x{actual[outer].Address:x}";
        }

        Assert.Equal(x, actual.Select(i => Regex.Replace(i.Text, @" <.*>$", "")));
    }

    [ObjdumpTheory]
    [InlineData(8, 2)]
    [InlineData(4, 16)]
    public void Generate_AffineKernel_DisassemblesToTheIntendedInstructions(int bits, int pairs)
    {
        const int prefetch = 6144;
        bool eight = bits == 8;
        var format = eight ? VnniPairFormat.Affine8 : VnniPairFormat.Affine4;
        List<(long Address, string Text)> actual = Bf16JitTests.Disassemble(VnniPairKernels.Generate(format, pairs, prefetch));
        List<string> x =
        [
            "push rbx", .. ArgumentLoads, "mov r10,QWORD PTR [rdi+0x40]", "vmovups zmm25,ZMMWORD PTR [rdi+0x80]",
            eight ? "vpbroadcastd zmm26,DWORD PTR [rdi+0x30]" : "vpbroadcastd zmm26,DWORD PTR [rdi+0x34]", "vpxord zmm28,zmm28,zmm28",
        ];
        for (int p = 0; p < pairs; p++)
        {
            x.Add($"vmovups ZMMWORD PTR {At("r9", 64 * p)},zmm28");
        }

        x.Add("test rcx,rcx");
        int jz = x.Count;
        x.Add("je ?");
        int outer = x.Count;
        for (int p = 0; p < pairs; p++)
        {
            x.Add($"vpxord zmm{p},zmm{p},zmm{p}");
        }

        x.AddRange(["mov rbx,rax", "add rax,0x20", "mov r11,QWORD PTR [rdi+0x38]"]);
        int inner = x.Count;
        for (int line = 0; line < (eight ? 4 : 2); line++)
        {
            x.Add($"prefetcht0 BYTE PTR [rax+0x{prefetch + 64 * line:x}]");
        }

        x.AddRange(Codes(eight, "rax", 0));

        for (int p = 0; p < pairs; p++)
        {
            x.AddRange(PairDot(p));
            x.Add($"vpbroadcastq zmm29,QWORD PTR {At("r8", 8 * p)}");
            x.Add("vpsubd zmm28,zmm28,zmm29");
            x.Add("vcvtdq2ps zmm28,zmm28");
            x.Add($"vbroadcastsd zmm29,QWORD PTR {At("rsi", 8 * p)}");
            x.Add($"vfmadd231ps zmm{p},zmm28,zmm29");
        }

        x.AddRange([eight ? "add rax,0x100" : "add rax,0x80", $"add rdx,0x{64 * pairs:x}", $"add rsi,0x{8 * pairs:x}", $"add r8,0x{8 * pairs:x}", "dec r11"]);
        int innerJump = x.Count;
        x.Add("jne ?");
        x.AddRange(["vpmovzxwd ymm24,XMMWORD PTR [rbx]", "vpslld ymm24,ymm24,0x10", "vpermps zmm24,zmm25,zmm24",
            "vpmovzxwd ymm27,XMMWORD PTR [rbx+0x10]", "vpslld ymm27,ymm27,0x10", "vpermps zmm27,zmm25,zmm27",
            "vbroadcastss zmm28,DWORD PTR [rdi+0x48]", "vfmadd231ps zmm27,zmm24,zmm28"]);
        for (int p = 0; p < pairs; p++)
        {
            x.Add($"vmovups zmm28,ZMMWORD PTR {At("r9", 64 * p)}");
            x.Add($"vfmadd231ps zmm28,zmm24,zmm{p}");
            x.Add($"vbroadcastsd zmm29,QWORD PTR {At("r10", 8 * p)}");
            x.Add("vfmadd231ps zmm28,zmm27,zmm29");
            x.Add($"vmovups ZMMWORD PTR {At("r9", 64 * p)},zmm28");
        }

        x.AddRange([$"add r10,0x{8 * pairs:x}", "dec rcx"]);
        int outerJump = x.Count;
        x.Add("jne ?");
        int doneIndex = x.Count;
        x.AddRange(["pop rbx", "vzeroupper", "ret"]);
        if (actual.Count == x.Count)
        {
            x[jz] = $"je 0x{actual[doneIndex].Address:x}";
            x[innerJump] = $"jne 0x{actual[inner].Address:x}";
            x[outerJump] = $"jne 0x{actual[outer].Address:x}";
        }

        Assert.Equal(x, actual.Select(i => Regex.Replace(i.Text, @" <.*>$", "")));
    }

    /// <summary>The six argument loads every generated kernel starts with, as objdump prints them.</summary>
    private static readonly string[] ArgumentLoads =
    [
        "mov rax,QWORD PTR [rdi]", "mov rcx,QWORD PTR [rdi+0x8]", "mov rdx,QWORD PTR [rdi+0x10]", "mov rsi,QWORD PTR [rdi+0x18]",
        "mov r8,QWORD PTR [rdi+0x20]", "mov r9,QWORD PTR [rdi+0x28]",
    ];

    /// <summary>objdump's form of [reg+offset] ([reg] for 0).</summary>
    private static string At(string reg, int offset) => offset == 0 ? $"[{reg}]" : $"[{reg}+0x{offset:x}]";

    /// <summary>A block's code vectors at [reg+offset] into zmm16..23: 8 sign-flipped ones, or 4 split into nibbles.</summary>
    private static IEnumerable<string> Codes(bool signed, string reg, int offset)
    {
        for (int j = 0; j < (signed ? 8 : 4); j++)
        {
            int r = signed ? 16 + j : 16 + 2 * j;
            yield return $"vbroadcasti64x4 zmm{r},YMMWORD PTR {At(reg, offset + 32 * j)}";
            yield return $"vpermd zmm{r},zmm25,zmm{r}";
            if (signed)
            {
                yield return $"vpxord zmm{r},zmm{r},zmm26";
            }
            else
            {
                yield return $"vpsrld zmm{r + 1},zmm{r},0x4";
                yield return $"vpandd zmm{r},zmm{r},zmm26";
                yield return $"vpandd zmm{r + 1},zmm{r + 1},zmm26";
            }
        }
    }

    /// <summary>Pair <paramref name="p"/>'s integer dot into zmm28: two zeroed chains, 8 broadcasts and <c>vpdpbusd</c>, added.</summary>
    private static IEnumerable<string> PairDot(int p)
    {
        yield return "vpxord zmm28,zmm28,zmm28";
        yield return "vpxord zmm29,zmm29,zmm29";
        for (int j = 0; j < 8; j++)
        {
            yield return $"vpbroadcastq zmm{30 + (j & 1)},QWORD PTR {At("rdx", 64 * p + 8 * j)}";
            yield return $"vpdpbusd zmm{28 + (j & 1)},zmm{16 + j},zmm{30 + (j & 1)}";
        }

        yield return "vpaddd zmm28,zmm28,zmm29";
    }

    [Fact]
    public void Generate_RefusesPairCountsOutsideOneToSixteen()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniPairKernels.Generate(VnniPairFormat.Q8_0, 0, 6144));
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniPairKernels.Generate(VnniPairFormat.Q4_0, VnniPairKernels.MaxPairs + 1, 6144));
    }

    [Fact]
    public void Args_FieldsSitWhereTheGeneratedCodeReadsThem()
    {
        Assert.Equal(VnniPairArgs.GroupOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.Group)));
        Assert.Equal(VnniPairArgs.BlocksOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.Blocks)));
        Assert.Equal(VnniPairArgs.XOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.X)));
        Assert.Equal(VnniPairArgs.XsOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.Xs)));
        Assert.Equal(VnniPairArgs.XsumOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.Xsum)));
        Assert.Equal(VnniPairArgs.AccOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.Acc)));
        Assert.Equal(VnniPairArgs.SignsOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.Signs)));
        Assert.Equal(VnniPairArgs.NibblesOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.Nibbles)));
        Assert.Equal(VnniPairArgs.BlocksPerGroupOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.BlocksPerGroup)));
        Assert.Equal(VnniPairArgs.XgOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.Xg)));
        Assert.Equal(VnniPairArgs.CentreOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.Centre)));
        Assert.Equal(VnniPairArgs.IndexOffset, (int)Marshal.OffsetOf<VnniPairArgs>(nameof(VnniPairArgs.Index)));
        VnniPairArgs a = VnniPairArgs.Create(null, 3, null, null, null, null);
        Assert.Equal(unchecked((int)0x80808080), a.Signs);
        Assert.Equal(0x0F0F0F0F, a.Nibbles);
        var index = new int[16];
        for (int i = 0; i < 16; i++)
        {
            index[i] = a.Index[i];
        }

        Assert.Equal(Enumerable.Range(0, 16).Select(i => i / 2), index);
    }

    [VnniPairJitTheory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.Q4_K)]
    public void OnAnAvx512VnniCpu_ProductsOfSeveralTokensTakeTheGeneratedTiles_WithEachTokensDecodeBits(DType dtype)
    {
        // where the generated tiles can run they are the default (QWEN3_JIT_PAIRS unset), and a 40-token product (32 + 8: a
        // full tile of 16 pairs, then 4) gives every token the bits of its one-token product
        Assert.NotNull(dtype switch { DType.Q8_0 => QuantMatMul.Q8PairJit, DType.Q4_0 => QuantMatMul.Q4PairJit, _ => QuantMatMul.Q4KPairJit });
        const int rows = 8 * 5 + 3, cols = 2 * 256;
        using var pool = new WorkerPool(2);
        byte* source = Q4x8MatMulTests.Source(dtype, rows, cols, 11);
        byte* packed = Q4x8MatMulTests.Repacked(dtype, source, rows, cols);
        try
        {
            var w = new WeightView(packed, QuantMatMul.GroupLayoutOf(dtype)!.Value, rows, cols);
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

/// <summary>A theory that runs the generated pair tiles; skipped where the CPU (or the runtime's ISA switches) lack AVX512_VNNI.</summary>
public sealed class VnniPairJitTheoryAttribute : TheoryAttribute
{
    public VnniPairJitTheoryAttribute()
    {
        if (!VnniPairKernels.IsSupported || Environment.GetEnvironmentVariable(QuantMatMul.JitPairsVariable) == "0")
        {
            Skip = "needs Linux x86-64 with AVX512F, AVX512BW and AVX512_VNNI (Zen 4, Zen 5, Intel since Ice Lake), and QWEN3_JIT_PAIRS not 0";
        }
    }
}
