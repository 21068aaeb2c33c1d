using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Qwen3Sharp.Kernels.Jit;

/// <summary>
/// The AVX512_BF16 prefill microkernels, generated as machine code when first needed: for R weight rows × 16·V
/// tokens, <c>tile[r][t] = Σ_p w[r][2p..2p+1] · x[t][2p..2p+1]</c> over kPairs bf16 pairs, one
/// <c>vdpbf16ps</c> (two float32 FMAs per lane) per row and token vector per pair.
/// </summary>
/// <remarks>
/// <para>.NET 10 has no managed intrinsic for <c>vdpbf16ps</c>; oneDNN and LIBXSMM reach it the same way, by
/// generating code at run time. Signature (System V x86-64):
/// <c>void kernel(uint* panel, ushort* w, long rowStrideBytes, long kPairs, float* tile)</c>.</para>
/// <list type="bullet">
/// <item><c>panel</c> [kPairs][16·V] dwords: token t's pair p as (bf16 x[t][2p]) | (bf16 x[t][2p+1]) &lt;&lt; 16
/// (<see cref="Bf16Prefill"/> packs it, round-to-nearest-even).</item>
/// <item><c>w</c> row 0 of R consecutive bf16 rows [R, ≥ 2·kPairs], <c>rowStrideBytes</c> apart, used in place:
/// a pair of adjacent bf16 weights is one dword, broadcast to all 16 lanes, so row-major weights need no repacking
/// and the result needs no horizontal sums.</item>
/// <item><c>tile</c> [R][16·V] float32, overwritten.</item>
/// </list>
/// <para>Registers: R·V accumulators zmm0.., the V panel vectors in zmm30/31 (zmm28.. for V &gt; 2), and
/// zmm28/29 for the broadcast weight pair in the separate-broadcast variant. Rows are addressed in groups of
/// five from up to three base pointers (rsi, r9, r10) with rdx = stride, rax = 3·stride:
/// <c>[p]</c>, <c>[p+rdx]</c>, <c>[p+rdx*2]</c>, <c>[p+rax]</c>, <c>[p+rdx*4]</c>.</para>
/// </remarks>
internal sealed unsafe class Bf16PanelKernels : IDisposable
{
    /// <summary>The largest row tile generated (R·V accumulators + V panel vectors + 2 broadcast registers ≤ 32).</summary>
    public const int MaxRowsLimit = 15;

    private readonly ExecutableCode _code;
    private readonly int[] _entries;   // [rows] offset of the kernel for that many rows (index 0 unused)

    /// <summary>Generates kernels for 1..<paramref name="rowTile"/> rows with <paramref name="vectors"/> 16-token vectors per panel.</summary>
    /// <remarks>
    /// The default, 14 rows × 2 vectors (28 accumulators) with a separate <c>vpbroadcastd</c> per row, measured fastest
    /// of 12×2, 14×2, 6×4 and 8×3 with and without embedded broadcast on the Zen 4 (quick bench <c>jit</c> mode,
    /// qwen3-1.7b's shapes at 512 tokens): 221–273 GFLOP/s per CPU-second single-threaded, 12×2 with embedded
    /// broadcast 206–242, the managed float32 panels 135–147.
    /// </remarks>
    public Bf16PanelKernels(int rowTile = 14, int vectors = 2, bool embeddedBroadcast = false)
    {
        if (!IsSupported)
        {
            throw new PlatformNotSupportedException(
                "The JIT bf16 prefill kernel needs Linux x86-64 and a CPU with AVX512F and AVX512_BF16 (CPUID 7.1 EAX bit 5).");
        }

        ValidateShape(rowTile, vectors, embeddedBroadcast);
        RowTile = rowTile;
        Vectors = vectors;
        EmbeddedBroadcast = embeddedBroadcast;
        var code = new List<byte>();
        _entries = new int[rowTile + 1];
        for (int rows = 1; rows <= rowTile; rows++)
        {
            while (code.Count % 64 != 0)
            {
                code.Add(0xCC);     // int3 between kernels
            }

            _entries[rows] = code.Count;
            code.AddRange(Generate(rows, vectors, embeddedBroadcast));
        }

        _code = new ExecutableCode(code.ToArray());
    }

    public int RowTile { get; }
    public int Vectors { get; }
    public bool EmbeddedBroadcast { get; }

    /// <summary>Tokens per panel (16 per vector).</summary>
    public int PanelTokens => 16 * Vectors;

    /// <summary>The kernel for <paramref name="rows"/> rows (1..<see cref="RowTile"/>).</summary>
    public delegate* unmanaged<uint*, ushort*, long, long, float*, void> For(int rows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, RowTile);
        return (delegate* unmanaged<uint*, ushort*, long, long, float*, void>)(_code.Address + _entries[rows]);
    }

    /// <summary>
    /// True on Linux x86-64 where the runtime uses AVX-512 (<see cref="Avx512F.IsSupported"/>, so
    /// <c>DOTNET_EnableAVX512=0</c> turns this off too) and CPUID leaf 7 sub-leaf 1 reports AVX512_BF16 (EAX bit 5).
    /// </summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64
        && Avx512F.IsSupported && CpuHasAvx512Bf16();

    /// <summary>CPUID.(EAX=7, ECX=1):EAX[5], after checking that leaf 7 exists.</summary>
    public static bool CpuHasAvx512Bf16()
    {
        if (!X86Base.IsSupported || X86Base.CpuId(0, 0).Eax < 7)
        {
            return false;
        }

        return (X86Base.CpuId(7, 0).Eax >= 1) && (X86Base.CpuId(7, 1).Eax & (1 << 5)) != 0;
    }

    public void Dispose() => _code.Dispose();

    internal static void ValidateShape(int rows, int vectors, bool embeddedBroadcast)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vectors, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(vectors, 4);
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, MaxRowsLimit);
        int registers = rows * vectors + vectors + (embeddedBroadcast ? 0 : 2);
        if (registers > 32)
        {
            throw new ArgumentOutOfRangeException(nameof(rows),
                $"{rows} rows × {vectors} vectors need {registers} zmm registers; there are 32.");
        }
    }

    /// <summary>The machine code of one kernel (also what the disassembly tests read).</summary>
    internal static byte[] Generate(int rows, int vectors, bool embeddedBroadcast)
    {
        ValidateShape(rows, vectors, embeddedBroadcast);
        const Gpr panel = Gpr.Rdi, stride = Gpr.Rdx, count = Gpr.Rcx, tile = Gpr.R8, stride3 = Gpr.Rax;
        Gpr[] bases = [Gpr.Rsi, Gpr.R9, Gpr.R10];
        int groups = (rows + 4) / 5;
        int firstX = 32 - vectors;                 // panel vectors at the top: zmm30, zmm31 for V = 2
        int bcast = firstX - 2;                    // zmm28, zmm29 alternate in the separate-broadcast variant

        var e = new X86Emitter();
        e.Lea(stride3, new Mem(stride, stride, 2));                    // rax = 3·stride
        for (int g = 1; g < groups; g++)
        {
            e.Lea(bases[g], new Mem(bases[g - 1], stride, 4));       // next group: five rows further
            e.Add(bases[g], stride);
        }

        for (int a = 0; a < rows * vectors; a++)
        {
            e.Vpxord(a, a, a);
        }

        Label loop = e.NewLabel(), done = e.NewLabel();
        e.Test(count, count);
        e.Jz(done);
        e.Bind(loop);
        for (int v = 0; v < vectors; v++)
        {
            e.VmovupsLoad(firstX + v, Mem.At(panel, 64 * v));
        }

        for (int r = 0; r < rows; r++)
        {
            Gpr b = bases[r / 5];
            Mem pair = (r % 5) switch
            {
                0 => Mem.At(b),
                1 => new Mem(b, stride, 1),
                2 => new Mem(b, stride, 2),
                3 => new Mem(b, stride3, 1),
                _ => new Mem(b, stride, 4),
            };
            if (embeddedBroadcast)
            {
                for (int v = 0; v < vectors; v++)
                {
                    e.Vdpbf16ps(r * vectors + v, firstX + v, pair, broadcast: true);
                }
            }
            else
            {
                int reg = bcast + (r & 1);
                e.Vpbroadcastd(reg, pair);
                for (int v = 0; v < vectors; v++)
                {
                    e.Vdpbf16ps(r * vectors + v, firstX + v, reg);
                }
            }
        }

        e.Add(panel, 64 * vectors);
        for (int g = 0; g < groups; g++)
        {
            e.Add(bases[g], 4);
        }

        e.Dec(count);
        e.Jnz(loop);
        e.Bind(done);
        for (int a = 0; a < rows * vectors; a++)
        {
            e.VmovupsStore(Mem.At(tile, 64 * a), a);
        }

        e.Vzeroupper();
        e.Ret();
        return e.ToArray();
    }
}
