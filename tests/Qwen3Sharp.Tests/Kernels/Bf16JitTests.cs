using System.Diagnostics;
using System.Text.RegularExpressions;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Jit;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;
using Xunit.Abstractions;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// The x86-64 emitter and the generated AVX512_BF16 prefill kernels: the bytes disassemble (binutils objdump, an
/// independent decoder) to the intended instructions on any machine; where the CPU has AVX512_BF16 the kernels equal
/// the scalar reference computed with bf16-rounded activations, on sizes that exercise every tail.
/// </summary>
public sealed partial class Bf16JitTests(ITestOutputHelper output)
{
    // ----- encodings, checked by objdump -----

    [ObjdumpFact]
    public void Emitter_EveryInstructionForm_DisassemblesAsIntended()
    {
        var e = new X86Emitter();
        var expected = new List<string>();
        void Check(string text) => expected.Add(text);

        e.Vdpbf16ps(0, 30, 1); Check("vdpbf16ps zmm0,zmm30,zmm1");
        e.Vdpbf16ps(17, 3, 25); Check("vdpbf16ps zmm17,zmm3,zmm25");
        e.Vdpbf16ps(9, 31, 12); Check("vdpbf16ps zmm9,zmm31,zmm12");
        e.Vdpbf16ps(0, 30, Mem.At(Gpr.Rsi), broadcast: true); Check("vdpbf16ps zmm0,zmm30,DWORD BCST [rsi]");
        e.Vdpbf16ps(23, 31, new Mem(Gpr.R9, Gpr.Rdx, 4), broadcast: true); Check("vdpbf16ps zmm23,zmm31,DWORD BCST [r9+rdx*4]");
        e.Vdpbf16ps(5, 30, new Mem(Gpr.R10, Gpr.Rax, 1), broadcast: true); Check("vdpbf16ps zmm5,zmm30,DWORD BCST [r10+rax*1]");
        e.Vdpbf16ps(2, 30, new Mem(Gpr.R13, Gpr.R11, 2), broadcast: true); Check("vdpbf16ps zmm2,zmm30,DWORD BCST [r13+r11*2+0x0]");
        e.Vdpbf16ps(4, 29, Mem.At(Gpr.Rdi, 8), broadcast: true); Check("vdpbf16ps zmm4,zmm29,DWORD BCST [rdi+0x8]");
        e.Vdpbf16ps(4, 29, Mem.At(Gpr.Rdi, 128), broadcast: false); Check("vdpbf16ps zmm4,zmm29,ZMMWORD PTR [rdi+0x80]");
        e.Vdpbf16ps(4, 29, Mem.At(Gpr.Rdi, 100), broadcast: false); Check("vdpbf16ps zmm4,zmm29,ZMMWORD PTR [rdi+0x64]");
        e.VmovupsLoad(30, Mem.At(Gpr.Rdi)); Check("vmovups zmm30,ZMMWORD PTR [rdi]");
        e.VmovupsLoad(31, Mem.At(Gpr.Rdi, 64)); Check("vmovups zmm31,ZMMWORD PTR [rdi+0x40]");
        e.VmovupsLoad(7, Mem.At(Gpr.R12, 64 * 200)); Check("vmovups zmm7,ZMMWORD PTR [r12+0x3200]");
        e.VmovupsStore(Mem.At(Gpr.R8, 64 * 27), 27); Check("vmovups ZMMWORD PTR [r8+0x6c0],zmm27");
        e.VmovupsStore(Mem.At(Gpr.Rbp), 16); Check("vmovups ZMMWORD PTR [rbp+0x0],zmm16");
        e.VmovupsStore(Mem.At(Gpr.Rsp, -64), 1); Check("vmovups ZMMWORD PTR [rsp-0x40],zmm1");
        e.Vbroadcastss(3, Mem.At(Gpr.Rsi, 4)); Check("vbroadcastss zmm3,DWORD PTR [rsi+0x4]");
        e.Vpbroadcastd(28, new Mem(Gpr.Rsi, Gpr.Rdx, 2)); Check("vpbroadcastd zmm28,DWORD PTR [rsi+rdx*2]");
        e.Vpbroadcastd(29, Mem.At(Gpr.R15, 1000)); Check("vpbroadcastd zmm29,DWORD PTR [r15+0x3e8]");
        e.Vpxord(0, 0, 0); Check("vpxord zmm0,zmm0,zmm0");
        e.Vpxord(27, 27, 27); Check("vpxord zmm27,zmm27,zmm27");
        e.Vpdpbusd(28, 16, 30); Check("vpdpbusd zmm28,zmm16,zmm30");
        e.Vpdpbusd(3, 23, 9); Check("vpdpbusd zmm3,zmm23,zmm9");
        e.Vpaddd(28, 28, 29); Check("vpaddd zmm28,zmm28,zmm29");
        e.Vpandd(16, 16, 26); Check("vpandd zmm16,zmm16,zmm26");
        e.Vcvtdq2psYmm(27, 27); Check("vcvtdq2ps ymm27,ymm27");
        e.VpmovzxwdYmm(24, Mem.At(Gpr.Rbx)); Check("vpmovzxwd ymm24,XMMWORD PTR [rbx]");
        e.VpmovzxwdYmm(27, Mem.At(Gpr.Rbx, 16)); Check("vpmovzxwd ymm27,XMMWORD PTR [rbx+0x10]");
        e.VpslldYmm(24, 24, 16); Check("vpslld ymm24,ymm24,0x10");
        e.VpmovzxbdYmm(27, Mem.At(Gpr.R10)); Check("vpmovzxbd ymm27,QWORD PTR [r10]");
        e.VpmovzxbdYmm(27, Mem.At(Gpr.R10, 64)); Check("vpmovzxbd ymm27,QWORD PTR [r10+0x40]");
        e.Vfnmadd231ps(3, 27, 11); Check("vfnmadd231ps zmm3,zmm27,zmm11");
        e.Vpsrld(17, 16, 4); Check("vpsrld zmm17,zmm16,0x4");
        e.Vpsrld(3, 30, 4); Check("vpsrld zmm3,zmm30,0x4");
        e.Vpsubd(28, 28, 29); Check("vpsubd zmm28,zmm28,zmm29");
        e.Vpermd(17, 25, 17); Check("vpermd zmm17,zmm25,zmm17");
        e.Vpermps(24, 25, 27); Check("vpermps zmm24,zmm25,zmm27");
        e.Vcvtdq2ps(28, 28); Check("vcvtdq2ps zmm28,zmm28");
        e.Vcvtdq2ps(2, 19); Check("vcvtdq2ps zmm2,zmm19");
        e.Vmulps(29, 24, 29); Check("vmulps zmm29,zmm24,zmm29");
        e.Vfmadd231ps(15, 28, 29); Check("vfmadd231ps zmm15,zmm28,zmm29");
        e.Vfmadd231ps(0, 1, 2); Check("vfmadd231ps zmm0,zmm1,zmm2");
        e.Vpbroadcastq(30, Mem.At(Gpr.Rdx, 8 * 7)); Check("vpbroadcastq zmm30,QWORD PTR [rdx+0x38]");
        e.Vpbroadcastq(31, Mem.At(Gpr.Rdx, 64 * 15 + 8)); Check("vpbroadcastq zmm31,QWORD PTR [rdx+0x3c8]");
        e.Vpbroadcastq(29, Mem.At(Gpr.R8, 120)); Check("vpbroadcastq zmm29,QWORD PTR [r8+0x78]");
        e.Vbroadcastsd(29, Mem.At(Gpr.Rsi, 8)); Check("vbroadcastsd zmm29,QWORD PTR [rsi+0x8]");
        e.Vbroadcasti64x4(16, Mem.At(Gpr.Rax, 16)); Check("vbroadcasti64x4 zmm16,YMMWORD PTR [rax+0x10]");
        e.Vbroadcasti64x4(23, Mem.At(Gpr.Rax, 16 + 32 * 7)); Check("vbroadcasti64x4 zmm23,YMMWORD PTR [rax+0xf0]");
        e.Vcvtph2psYmm(27, Mem.At(Gpr.Rax)); Check("vcvtph2ps ymm27,XMMWORD PTR [rax]");
        e.Vcvtph2psYmm(3, Mem.At(Gpr.R11, 272)); Check("{evex} vcvtph2ps ymm3,XMMWORD PTR [r11+0x110]");   // objdump marks an EVEX form that VEX could encode
        e.MovLoad(Gpr.Rax, Mem.At(Gpr.Rdi)); Check("mov rax,QWORD PTR [rdi]");
        e.MovLoad(Gpr.R9, Mem.At(Gpr.Rdi, 40)); Check("mov r9,QWORD PTR [rdi+0x28]");
        e.Prefetcht0(Mem.At(Gpr.Rax, 6160)); Check("prefetcht0 BYTE PTR [rax+0x1810]");
        e.Prefetcht0(Mem.At(Gpr.R10, 64)); Check("prefetcht0 BYTE PTR [r10+0x40]");
        e.Lea(Gpr.Rax, new Mem(Gpr.Rdx, Gpr.Rdx, 2)); Check("lea rax,[rdx+rdx*2]");
        e.Lea(Gpr.R9, new Mem(Gpr.Rsi, Gpr.Rdx, 4)); Check("lea r9,[rsi+rdx*4]");
        e.Lea(Gpr.R10, new Mem(Gpr.R9, Gpr.R14, 8, -12)); Check("lea r10,[r9+r14*8-0xc]");
        e.Mov(Gpr.Rbx, Gpr.R11); Check("mov rbx,r11");
        e.MovImm(Gpr.Rdi, 8); Check("mov rdi,0x8");
        e.MovImm(Gpr.R12, -1); Check("mov r12,0xffffffffffffffff");
        e.Add(Gpr.Rdx, Gpr.Rbx); Check("add rdx,rbx");
        e.Add(Gpr.R8, Gpr.R12); Check("add r8,r12");
        e.Add(Gpr.R9, Gpr.Rdx); Check("add r9,rdx");
        e.Add(Gpr.Rdi, 128); Check("add rdi,0x80");
        e.Add(Gpr.Rsi, 4); Check("add rsi,0x4");
        e.Sub(Gpr.R15, 64); Check("sub r15,0x40");
        e.Test(Gpr.Rcx, Gpr.Rcx); Check("test rcx,rcx");
        e.Dec(Gpr.Rcx); Check("dec rcx");
        e.Dec(Gpr.R11); Check("dec r11");
        e.Push(Gpr.Rbx); Check("push rbx");
        e.Push(Gpr.R12); Check("push r12");
        e.Pop(Gpr.R12); Check("pop r12");
        e.Pop(Gpr.Rbx); Check("pop rbx");
        e.Vzeroupper(); Check("vzeroupper");
        e.Ret(); Check("ret");

        Assert.Equal(expected, Disassemble(e.ToArray()).Select(i => i.Text));
    }

    [ObjdumpFact]
    public void Emitter_Jumps_ResolveForwardAndBackward()
    {
        var e = new X86Emitter();
        Label back = e.NewLabel(), forward = e.NewLabel();
        e.Bind(back);                  // 0
        e.Dec(Gpr.Rcx);                // 0..3
        e.Jz(forward);                 // 3..9
        e.Jnz(back);                   // 9..15
        e.Bind(forward);               // 15
        e.Ret();
        var lines = Disassemble(e.ToArray());
        Assert.Equal(["dec rcx", "je 0xf", "jne 0x0", "ret"], lines.Select(i => Regex.Replace(i.Text, @" <.*>$", "")));
    }

    [Fact]
    public void Emitter_UnboundLabel_Throws()
    {
        var e = new X86Emitter();
        e.Jnz(e.NewLabel());
        Assert.Throws<InvalidOperationException>(() => e.ToArray());
    }

    [ObjdumpTheory]
    [InlineData(1, 2, true)]
    [InlineData(7, 2, true)]
    [InlineData(12, 2, true)]
    [InlineData(15, 2, true)]
    [InlineData(14, 2, false)]
    [InlineData(6, 4, true)]
    [InlineData(3, 1, false)]
    public void Generate_Kernel_DisassemblesToTheIntendedInstructions(int rows, int vectors, bool embedded)
    {
        var listing = Disassemble(Bf16PanelKernels.Generate(rows, vectors, embedded));
        Assert.Equal(ExpectedKernel(rows, vectors, embedded, listing), listing.Select(i => Regex.Replace(i.Text, @" <.*>$", "")));
    }

    [Fact]
    public void Generate_TooManyRegisters_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Bf16PanelKernels.Generate(8, 4, embeddedBroadcast: true));   // 32 accumulators + 4
        Assert.Throws<ArgumentOutOfRangeException>(() => Bf16PanelKernels.Generate(15, 2, embeddedBroadcast: false)); // 30 + 2 + 2
        Assert.Throws<ArgumentOutOfRangeException>(() => Bf16PanelKernels.Generate(0, 2, embeddedBroadcast: true));
    }

    // ----- the generated kernels run (AVX512_BF16 machines only) -----

    [Bf16JitTheory]
    [InlineData(12, 2, true)]
    [InlineData(14, 2, false)]
    [InlineData(6, 4, true)]
    [InlineData(5, 1, true)]
    public unsafe void Kernel_EveryRowCount_EqualsScalarPairDots(int rowTile, int vectors, bool embedded)
    {
        using var kernels = new Bf16PanelKernels(rowTile, vectors, embedded);
        var rng = new Random(3);
        int nt = kernels.PanelTokens;
        foreach (int pairs in new[] { 0, 1, 3, 64, 517 })
        {
            uint[] panel = new uint[Math.Max(1, pairs * nt)];
            for (int i = 0; i < pairs * nt; i++)
            {
                panel[i] = Bf16Prefill.ToBf16(Rand(rng)) | Bf16Prefill.ToBf16(Rand(rng)) << 16;
            }

            int stride = 2 * pairs + 6;          // rows farther apart than their length, as in a column block
            ushort[] w = new ushort[rowTile * stride];
            for (int i = 0; i < w.Length; i++)
            {
                w[i] = (ushort)Bf16Prefill.ToBf16(Rand(rng));
            }

            for (int rows = 1; rows <= rowTile; rows++)
            {
                float[] tile = new float[rows * nt];
                Array.Fill(tile, float.NaN);     // overwritten, never read
                fixed (uint* pp = panel)
                fixed (ushort* pw = w)
                fixed (float* pt = tile)
                {
                    kernels.For(rows)(pp, pw, stride * sizeof(ushort), pairs, pt);
                }

                var expected = new float[rows * nt];
                for (int r = 0; r < rows; r++)
                {
                    for (int t = 0; t < nt; t++)
                    {
                        double sum = 0;
                        for (int p = 0; p < pairs; p++)
                        {
                            uint xv = panel[p * nt + t];
                            sum += (double)Bf16(xv & 0xFFFF) * Bf16(w[r * stride + 2 * p])
                                + (double)Bf16(xv >> 16) * Bf16(w[r * stride + 2 * p + 1]);
                        }

                        expected[r * nt + t] = (float)sum;
                    }
                }

                KernelAssert.Close(expected, tile, atol: 1e-5f * (1 + MathF.Sqrt(2 * pairs)), rtol: 1e-5f,
                    $"tile {rowTile}x{vectors} embedded={embedded} rows={rows} pairs={pairs}");
            }
        }
    }

    public static TheoryData<bool> Accumulate => new() { false, true };

    [Bf16JitTheory, MemberData(nameof(Accumulate))]
    public void Run_OddShapes_EqualScalarReferenceOnBf16RoundedActivations(bool accumulate)
    {
        using var pool = new WorkerPool(2);
        using var kernels = new Bf16PanelKernels();
        var rng = new Random(5);
        // rows: below one tile, a tile tail, past one work item (4 tiles) with a tail; cols: 1 and odd (managed last
        // column), even; tokens: below, at and past one 32-token panel, with a partial last panel.
        foreach ((int rows, int cols) in new[] { (1, 2), (5, 3), (13, 64), (49, 129), (100, 7), (61, 1), (30, 2050) })
        {
            using var weights = new TestWeights(rng, DType.BF16, rows, cols);
            foreach (int tokens in new[] { 1, 31, 32, 33, 70 })
            {
                float[] x = KernelAssert.Random(rng, tokens * cols);
                float[] expected = KernelAssert.Random(rng, tokens * rows);
                float[] actual = (float[])expected.Clone();
                ScalarKernels.MatMul(cols < 2 ? x : RoundedToBf16(x), tokens, weights.View, expected, accumulate);
                Bf16Prefill.Run(pool, kernels, x, tokens, weights.View, actual, accumulate);
                KernelAssert.Close(expected, actual, atol: 1e-5f * (1 + MathF.Sqrt(cols)), rtol: 1e-5f,
                    $"accumulate={accumulate} tokens={tokens} rows={rows} cols={cols}");
            }
        }
    }

    [Bf16JitFact]
    public void Run_QwenShape_DriftFromFloat32ActivationsIsBf16Sized()
    {
        // The one approximation: activations rounded to bf16 (8 significant bits). Against the float32-activation
        // reference each product errs by up to 2^-9 relative with random sign, so an output errs by about
        // 2^-9 · |x|·|w| · sqrt(cols) (measured here: 4.7e-3 against that scale's 4.4e-3); bound it at 4× that scale.
        using var pool = new WorkerPool(2);
        var rng = new Random(9);
        using var weights = new TestWeights(rng, DType.BF16, 256, 2048, scale: 0.05f);
        int tokens = 64;
        float[] x = KernelAssert.Random(rng, tokens * 2048);
        float[] exact = new float[tokens * 256];
        float[] actual = new float[tokens * 256];
        ScalarKernels.MatMul(x, tokens, weights.View, exact, accumulate: false);
        Bf16Prefill.Run(pool, Bf16Prefill.Shared, x, tokens, weights.View, actual, accumulate: false);
        double maxDiff = 0, maxAbs = 0;
        for (int i = 0; i < exact.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(exact[i] - actual[i]));
            maxAbs = Math.Max(maxAbs, Math.Abs(exact[i]));
        }

        output.WriteLine($"256x2048, 64 tokens: max |bf16-activation result - float32| = {maxDiff:E3} (max |y| {maxAbs:E3})");
        double scale = Math.Pow(2, -9) * Math.Sqrt(2048) * 1.0 * 0.05;
        Assert.InRange(maxDiff, 1e-6, 4 * scale);   // nonzero (the rounding happened) and bf16-sized
    }

    [Fact]
    public void ToBf16_RoundsToNearestEven()
    {
        Assert.Equal(0x3F80u, Bf16Prefill.ToBf16(1f));
        Assert.Equal(0x3F80u, Bf16Prefill.ToBf16(BitConverter.UInt32BitsToSingle(0x3F80_8000)));   // tie, even stays
        Assert.Equal(0x3F82u, Bf16Prefill.ToBf16(BitConverter.UInt32BitsToSingle(0x3F81_8000)));   // tie, odd rounds up
        Assert.Equal(0x3F81u, Bf16Prefill.ToBf16(BitConverter.UInt32BitsToSingle(0x3F80_8001)));   // above the tie
        Assert.Equal(0x7F80u, Bf16Prefill.ToBf16(float.PositiveInfinity));
        Assert.Equal(0x7F80u, Bf16Prefill.ToBf16(BitConverter.UInt32BitsToSingle(0x7F7F_FFFF)));   // max float rounds to inf
        Assert.True(float.IsNaN(Bf16Prefill.RoundToBf16(float.NaN)));
        Assert.Equal(0x8000u, Bf16Prefill.ToBf16(-0f));
    }

    [Fact]
    public unsafe void PackPairs_SpecialValuesAndTails_MatchScalarRounding()
    {
        // Ties both ways, just above a tie, infinities, NaNs (quiet and signalling), zeros, denormals, max float.
        uint[] bits = [0x3F80_8000, 0x3F81_8000, 0x3F80_8001, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001, 0xFF80_0001,
            0x0000_0000, 0x8000_0000, 0x0000_8000, 0x0001_8000, 0x7F7F_FFFF, 0xC2F7_7FFF, 0x3EAA_AAAB, 0xBF7F_FF80];
        foreach (int pairs in new[] { 0, 1, 15, 16, 17, 40 })
        {
            float[] x = new float[2 * pairs];
            var rng = new Random(pairs);
            for (int i = 0; i < x.Length; i++)
            {
                x[i] = BitConverter.UInt32BitsToSingle(i < bits.Length ? bits[(i * 7) % bits.Length] : (uint)rng.Next());
            }

            uint[] actual = new uint[Math.Max(1, pairs * 3)];
            fixed (float* px = x)
            fixed (uint* pa = actual)
            {
                Bf16Prefill.PackPairs(px, pairs, pa, 3);
            }

            for (int p = 0; p < pairs; p++)
            {
                uint expected = Bf16Prefill.ToBf16(x[2 * p]) | Bf16Prefill.ToBf16(x[2 * p + 1]) << 16;
                Assert.True(expected == actual[3 * p], $"pairs={pairs} p={p}: {BitConverter.SingleToUInt32Bits(x[2 * p]):X8} " +
                    $"{BitConverter.SingleToUInt32Bits(x[2 * p + 1]):X8} packed {actual[3 * p]:X8}, expected {expected:X8}");
            }
        }
    }

    [Fact]
    public void Kernels_WhereUnsupported_RefuseClearly()
    {
        if (Bf16PanelKernels.IsSupported)
        {
            using var kernels = new Bf16PanelKernels();
            Assert.Equal(PrefillKernel.JitBf16, KernelSelection.ChoosePrefill("jit-bf16", jitSupported: true));
            return;
        }

        var e = Assert.Throws<PlatformNotSupportedException>(() => new Bf16PanelKernels());
        Assert.Contains("AVX512_BF16", e.Message);
    }

    [Theory]
    [InlineData(null, true, PrefillKernel.Managed)]     // opt-in while its golden drift exceeds the suite's tolerance
    [InlineData("auto", true, PrefillKernel.Managed)]
    [InlineData("", false, PrefillKernel.Managed)]
    [InlineData("auto", false, PrefillKernel.Managed)]
    [InlineData(" Managed ", true, PrefillKernel.Managed)]
    [InlineData("jit-bf16", true, PrefillKernel.JitBf16)]
    public void ChoosePrefill_SettingAndCpu_PickTheKernel(string? setting, bool supported, PrefillKernel expected)
        => Assert.Equal(expected, KernelSelection.ChoosePrefill(setting, supported));

    [Fact]
    public void ChoosePrefill_BadOrUnsupportedSetting_IsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelSelection.ChoosePrefill("jit", true));
        Assert.Contains(KernelSelection.PrefillKernelVariable, e.Message);
        var n = Assert.Throws<NotSupportedException>(() => KernelSelection.ChoosePrefill("jit-bf16", false));
        Assert.Contains("AVX512_BF16", n.Message);
    }

    [Fact]
    public void PrefillSelection_MatchesCpuAndEnvironment()
    {
        string? setting = Environment.GetEnvironmentVariable(KernelSelection.PrefillKernelVariable);
        output.WriteLine($"AVX512_BF16 {Bf16PanelKernels.CpuHasAvx512Bf16()}, JIT supported {Bf16PanelKernels.IsSupported}, " +
            $"{KernelSelection.PrefillKernelVariable}={setting ?? "(unset)"}, prefill kernel {KernelSelection.Name(KernelSelection.Prefill)}");
        Assert.Equal(KernelSelection.ChoosePrefill(setting, Bf16PanelKernels.IsSupported), KernelSelection.Prefill);
    }

    internal static float[] RoundedToBf16(float[] x) => x.Select(Bf16Prefill.RoundToBf16).ToArray();

    private static float Rand(Random rng) => (float)(rng.NextDouble() * 2 - 1);

    private static float Bf16(uint bits) => BitConverter.UInt32BitsToSingle(bits << 16);

    /// <summary>The kernel written out by hand from the documented register plan (jump targets read from the listing).</summary>
    private static List<string> ExpectedKernel(int rows, int vectors, bool embedded, List<(long Address, string Text)> actual)
    {
        string[] bases = ["rsi", "r9", "r10"];
        int groups = (rows + 4) / 5, firstX = 32 - vectors;
        var x = new List<string> { "lea rax,[rdx+rdx*2]" };
        for (int g = 1; g < groups; g++)
        {
            x.Add($"lea {bases[g]},[{bases[g - 1]}+rdx*4]");
            x.Add($"add {bases[g]},rdx");
        }

        for (int a = 0; a < rows * vectors; a++)
        {
            x.Add($"vpxord zmm{a},zmm{a},zmm{a}");
        }

        x.Add("test rcx,rcx");
        int jz = x.Count;
        x.Add("je ?");
        int loopIndex = x.Count;
        for (int v = 0; v < vectors; v++)
        {
            x.Add(v == 0 ? $"vmovups zmm{firstX},ZMMWORD PTR [rdi]" : $"vmovups zmm{firstX + v},ZMMWORD PTR [rdi+0x{64 * v:x}]");
        }

        for (int r = 0; r < rows; r++)
        {
            string b = bases[r / 5];
            string addr = (r % 5) switch { 0 => $"[{b}]", 1 => $"[{b}+rdx*1]", 2 => $"[{b}+rdx*2]", 3 => $"[{b}+rax*1]", _ => $"[{b}+rdx*4]" };
            if (embedded)
            {
                for (int v = 0; v < vectors; v++)
                {
                    x.Add($"vdpbf16ps zmm{r * vectors + v},zmm{firstX + v},DWORD BCST {addr}");
                }
            }
            else
            {
                int reg = firstX - 2 + (r & 1);
                x.Add($"vpbroadcastd zmm{reg},DWORD PTR {addr}");
                for (int v = 0; v < vectors; v++)
                {
                    x.Add($"vdpbf16ps zmm{r * vectors + v},zmm{firstX + v},zmm{reg}");
                }
            }
        }

        x.Add($"add rdi,0x{64 * vectors:x}");
        for (int g = 0; g < groups; g++)
        {
            x.Add($"add {bases[g]},0x4");
        }

        x.Add("dec rcx");
        x.Add("jne ?");
        int doneIndex = x.Count;
        for (int a = 0; a < rows * vectors; a++)
        {
            x.Add(a == 0 ? "vmovups ZMMWORD PTR [r8],zmm0" : $"vmovups ZMMWORD PTR [r8+0x{64 * a:x}],zmm{a}");
        }

        x.Add("vzeroupper");
        x.Add("ret");

        // Jump targets: the addresses of the instructions they must land on, as objdump prints them.
        if (actual.Count == x.Count)
        {
            x[jz] = $"je 0x{actual[doneIndex].Address:x}";
            x[doneIndex - 1] = $"jne 0x{actual[loopIndex].Address:x}";
        }

        return x;
    }

    /// <summary>objdump's Intel-syntax listing of <paramref name="code"/>: (address, instruction) with spacing normalised.</summary>
    internal static List<(long Address, string Text)> Disassemble(byte[] code)
    {
        string path = Path.Combine(Path.GetTempPath(), $"qwen3-jit-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, code);
        try
        {
            var psi = new ProcessStartInfo("objdump", ["-D", "-b", "binary", "-mi386:x86-64", "-M", "intel", "--insn-width=16", path])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using Process p = Process.Start(psi)!;

            string text = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, $"objdump failed: {p.StandardError.ReadToEnd()}");
            var lines = new List<(long, string)>();
            foreach (Match m in ListingLine().Matches(text))
            {
                lines.Add((Convert.ToInt64(m.Groups[1].Value, 16), Regex.Replace(m.Groups[2].Value.Trim(), @"\s+", " ")));
            }

            return lines;
        }
        finally
        {
            File.Delete(path);
        }
    }

    // "   1a:\t62 f2 0e 40 52 06 \tvdpbf16ps zmm0,zmm30,DWORD BCST [rsi]"
    [GeneratedRegex(@"^ *([0-9a-f]+):\t(?:[0-9a-f]{2} )+ *\t(.+)$", RegexOptions.Multiline)]
    private static partial Regex ListingLine();
}

/// <summary>A fact that needs binutils <c>objdump</c> on the PATH; skipped with the reason where it is missing.</summary>
public sealed class ObjdumpFactAttribute : FactAttribute
{
    public ObjdumpFactAttribute()
    {
        if (!JitTestEnvironment.HasObjdump)
        {
            Skip = JitTestEnvironment.NoObjdump;
        }
    }
}

/// <summary>A theory that needs binutils <c>objdump</c> on the PATH.</summary>
public sealed class ObjdumpTheoryAttribute : TheoryAttribute
{
    public ObjdumpTheoryAttribute()
    {
        if (!JitTestEnvironment.HasObjdump)
        {
            Skip = JitTestEnvironment.NoObjdump;
        }
    }
}

/// <summary>A fact that runs generated AVX512_BF16 code; skipped where the CPU (or the runtime's ISA switches) lack it.</summary>
public sealed class Bf16JitFactAttribute : FactAttribute
{
    public Bf16JitFactAttribute()
    {
        if (!Bf16PanelKernels.IsSupported)
        {
            Skip = JitTestEnvironment.NoBf16;
        }
    }
}

/// <summary>A theory that runs generated AVX512_BF16 code.</summary>
public sealed class Bf16JitTheoryAttribute : TheoryAttribute
{
    public Bf16JitTheoryAttribute()
    {
        if (!Bf16PanelKernels.IsSupported)
        {
            Skip = JitTestEnvironment.NoBf16;
        }
    }
}

internal static class JitTestEnvironment
{
    public const string NoObjdump = "binutils objdump is not on the PATH: the emitted encodings cannot be checked against a disassembler here.";
    public const string NoBf16 = "this CPU/runtime lacks Linux x86-64 + AVX512F + AVX512_BF16: the generated kernels cannot run here.";

    public static bool HasObjdump { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Any(d => File.Exists(Path.Combine(d, "objdump")));
}
