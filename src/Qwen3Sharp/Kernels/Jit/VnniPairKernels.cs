using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Qwen3Sharp.Kernels.Jit;

/// <summary>The block formats <see cref="VnniPairKernels"/> generates tiles for.</summary>
internal enum VnniPairFormat
{
    /// <summary><see cref="Tensors.DType.Q8_0x8"/>: per block 8 fp16 scales, then 8 code vectors of signed bytes.</summary>
    Q8_0,

    /// <summary><see cref="Tensors.DType.Q4_0x8"/>: per block 8 fp16 scales, then 4 vectors of nibbles (low against dword 2v, high against 2v + 1).</summary>
    Q4_0,

    /// <summary>
    /// <see cref="Tensors.DType.Q4_Kx8"/>: per super-block 8 sub-blocks of nibbles as Q4_0's, then the rows' 6-bit scales and
    /// mins, d and dmin; the activation sums are the float scale · sum.
    /// </summary>
    Q4_K,

    /// <summary>
    /// <see cref="Tensors.DType.Affine8x8"/> (MLX 5–8-bit): per affine group the rows' bf16 scales and biases, then its
    /// blocks of signed codes (code − centre) as Q8_0's; the activation sums times 128.
    /// </summary>
    Affine8,

    /// <summary>
    /// <see cref="Tensors.DType.Affine4x8"/> (MLX 2–4-bit): per affine group the rows' bf16 scales and biases, then its blocks
    /// of nibbles as Q4_0's; the activation sums times the centre.
    /// </summary>
    Affine4,
}

/// <summary>
/// The Q8_0x8 and Q4_0x8 token-pair tiles as generated machine code: 512-bit <c>vpdpbusd</c> (AVX512_VNNI), which .NET 10
/// exposes only under AVX10 and AMD's AVX-512 CPUs lack. One 8-row group against P token pairs (1..16), lane 2r row r
/// against token t and lane 2r + 1 against t + 1, as <see cref="QuantMatMul.DotGroupQ4_0x8Pairs_512"/> lays them out,
/// over the tile-major paired activations of <see cref="QuantMatMul.PairActivations"/> (sums times 128 for Q8_0, 8 for Q4_0).
/// </summary>
/// <remarks>
/// <para>Per block: the 8 fp16 scales to float32 (<c>vcvtph2ps</c>, exact) and duplicated to both lanes of their row
/// (<c>vpermps</c>); each code vector (lane r: 4 codes of row r) read into both halves (<c>vbroadcasti64x4</c>) and
/// duplicated (<c>vpermd</c>); Q8_0's made unsigned by flipping their sign bits (w + 128), Q4_0's split into low and high
/// nibbles (<c>vpsrld</c>, <c>vpandd</c>). Per pair: 8 <c>vpbroadcastq</c> of the pair's interleaved activation dwords and
/// 8 <c>vpdpbusd</c> in two chains, their sum less the offset times Σx, converted, times (weight scale · activation scale)
/// and added with one FMA into the pair's accumulator, which stays in its register for the whole group: the integer dot
/// and the float steps of the 256-bit VNNI tiles (<c>DotGroupQ8_0x8NVnni</c>, <c>DotGroupQ4_0x8N_256</c>), so the
/// bits are each token's decode product's.</para>
/// <para>Signature (System V x86-64): <c>void kernel(VnniPairArgs* args)</c>. Registers: zmm0..P−1 the accumulators,
/// zmm16..23 the block's code vectors, zmm24 its scales, zmm25 the duplicating index, zmm26 the sign bits or the nibble
/// mask, zmm27 the widened scales, zmm28/29 the two dot chains, zmm30/31 the activation broadcasts; rax the group, rcx
/// the blocks left, rdx/rsi/r8 the activation codes, scales and sums of the current block, r9 the accumulators' output.</para>
/// </remarks>
internal sealed unsafe class VnniPairKernels : IDisposable
{
    /// <summary>The most pairs one kernel takes (16 accumulators).</summary>
    public const int MaxPairs = 16;

    /// <summary>The most pairs one kernel of <paramref name="format"/> takes (the same for every format).</summary>
    public static int MaxPairsOf(VnniPairFormat format) => MaxPairs;


    private readonly ExecutableCode _code;
    private readonly int[] _entries;   // [pairs] offset of the kernel for that many pairs (index 0 unused)

    /// <summary>Generates <paramref name="format"/>'s kernels for 1..<see cref="MaxPairs"/> pairs, prefetching <paramref name="prefetchBytes"/> ahead of the codes.</summary>
    public VnniPairKernels(VnniPairFormat format, int prefetchBytes)
    {
        if (!IsSupported)
        {
            throw new PlatformNotSupportedException("The generated pair tiles need Linux x86-64 and a CPU with AVX512F, AVX512BW and AVX512_VNNI.");
        }

        Format = format;
        var code = new List<byte>();
        _entries = new int[MaxPairsOf(format) + 1];
        for (int pairs = 1; pairs <= MaxPairsOf(format); pairs++)
        {
            while (code.Count % 64 != 0)
            {
                code.Add(0xCC);     // int3 between kernels
            }

            _entries[pairs] = code.Count;
            code.AddRange(Generate(format, pairs, prefetchBytes));
        }

        _code = new ExecutableCode(code.ToArray());
    }

    public VnniPairFormat Format { get; }

    /// <summary>The kernel for <paramref name="pairs"/> pairs (1..<see cref="MaxPairs"/>).</summary>
    public delegate* unmanaged<VnniPairArgs*, void> For(int pairs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pairs, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pairs, MaxPairsOf(Format));
        return (delegate* unmanaged<VnniPairArgs*, void>)(_code.Address + _entries[pairs]);
    }

    /// <summary>
    /// True on Linux x86-64 where the runtime uses AVX-512 BW (so <c>DOTNET_EnableAVX512=0</c> turns this off too) and
    /// CPUID leaf 7 reports AVX512_VNNI (ECX bit 11).
    /// </summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64
        && Avx512BW.IsSupported && CpuHasAvx512Vnni();

    /// <summary>CPUID.(EAX=7, ECX=0):ECX[11].</summary>
    public static bool CpuHasAvx512Vnni()
        => X86Base.IsSupported && X86Base.CpuId(0, 0).Eax >= 7 && (X86Base.CpuId(7, 0).Ecx & (1 << 11)) != 0;

    public void Dispose() => _code.Dispose();

    // Registers every kernel uses alike: the arguments' pointer, the group, the loop count, the tile's activation codes,
    // scales and sums, the output; the code vectors zmm16..23, the duplicating index, the two dot chains and broadcasts.
    private const Gpr ArgsReg = Gpr.Rdi, GroupReg = Gpr.Rax, CountReg = Gpr.Rcx, XReg = Gpr.Rdx, XsReg = Gpr.Rsi, XsumReg = Gpr.R8, OutputReg = Gpr.R9;
    private const int CodesReg = 16, IndexReg = 25, DotA = 28, DotB = 29, BcastA = 30, BcastB = 31;

    /// <summary>The group, the loop count, the activation codes, scales and sums and the output from the arguments.</summary>
    private static void LoadArguments(X86Emitter e)
    {
        e.MovLoad(GroupReg, Mem.At(ArgsReg, VnniPairArgs.GroupOffset));
        e.MovLoad(CountReg, Mem.At(ArgsReg, VnniPairArgs.BlocksOffset));
        e.MovLoad(XReg, Mem.At(ArgsReg, VnniPairArgs.XOffset));
        e.MovLoad(XsReg, Mem.At(ArgsReg, VnniPairArgs.XsOffset));
        e.MovLoad(XsumReg, Mem.At(ArgsReg, VnniPairArgs.XsumOffset));
        e.MovLoad(OutputReg, Mem.At(ArgsReg, VnniPairArgs.AccOffset));
    }

    /// <summary>A block's 8 signed code vectors at <paramref name="at"/> + <paramref name="offset"/>, duplicated and made unsigned (the sign bits in zmm<paramref name="signs"/> flipped): zmm16..23.</summary>
    private static void SignFlippedCodes(X86Emitter e, Gpr at, int offset, int signs)
    {
        for (int j = 0; j < 8; j++)
        {
            e.Vbroadcasti64x4(CodesReg + j, Mem.At(at, offset + 32 * j));
            e.Vpermd(CodesReg + j, IndexReg, CodesReg + j);
            e.Vpxord(CodesReg + j, CodesReg + j, signs);
        }
    }

    /// <summary>
    /// A block's 4 nibble vectors at <paramref name="at"/> + <paramref name="offset"/>, duplicated and split by the mask in
    /// zmm<paramref name="nibbles"/>: zmm16 + 2v the low nibbles of vector v (against dword 2v), zmm17 + 2v the high ones.
    /// </summary>
    private static void NibbleCodes(X86Emitter e, Gpr at, int offset, int nibbles)
    {
        for (int v = 0; v < 4; v++)
        {
            int low = CodesReg + 2 * v, high = low + 1;
            e.Vbroadcasti64x4(low, Mem.At(at, offset + 32 * v));
            e.Vpermd(low, IndexReg, low);
            e.Vpsrld(high, low, 4);
            e.Vpandd(low, low, nibbles);
            e.Vpandd(high, high, nibbles);
        }
    }

    /// <summary>Pair <paramref name="p"/>'s integer dot with the code vectors into zmm28: 8 <c>vpbroadcastq</c> and 8 <c>vpdpbusd</c> in two chains, added.</summary>
    private static void PairDot(X86Emitter e, int p)
    {
        e.Vpxord(DotA, DotA, DotA);
        e.Vpxord(DotB, DotB, DotB);
        for (int j = 0; j < 8; j++)
        {
            int bcast = (j & 1) == 0 ? BcastA : BcastB;
            e.Vpbroadcastq(bcast, Mem.At(XReg, 64 * p + 8 * j));
            e.Vpdpbusd((j & 1) == 0 ? DotA : DotB, CodesReg + j, bcast);
        }

        e.Vpaddd(DotA, DotA, DotB);
    }

    /// <summary>A block's code vectors at <paramref name="at"/> + <paramref name="offset"/>: <see cref="SignFlippedCodes"/> for signed 8-bit codes, else <see cref="NibbleCodes"/>.</summary>
    private static void Codes(X86Emitter e, Gpr at, int offset, int constant, bool signed)
    {
        if (signed)
        {
            SignFlippedCodes(e, at, offset, constant);
        }
        else
        {
            NibbleCodes(e, at, offset, constant);
        }
    }

    /// <summary>
    /// Pair <paramref name="p"/>'s <see cref="PairDot"/> less its 128 · Σx (the codes' offset) as floats in zmm28, and its
    /// activation scales broadcast in zmm29.
    /// </summary>
    private static void CenteredPairDot(X86Emitter e, int p)
    {
        PairDot(e, p);
        e.Vpbroadcastq(DotB, Mem.At(XsumReg, 8 * p));
        e.Vpsubd(DotA, DotA, DotB);
        e.Vcvtdq2ps(DotA, DotA);
        e.Vbroadcastsd(DotB, Mem.At(XsReg, 8 * p));
    }

    /// <summary>The activation pointers past one block of <paramref name="pairs"/> pairs: their codes, scales and sums.</summary>
    private static void AdvancePairs(X86Emitter e, int pairs)
    {
        e.Add(XReg, 64 * pairs);
        e.Add(XsReg, 8 * pairs);
        e.Add(XsumReg, 8 * pairs);
    }

    /// <summary>Bytes of one block of <paramref name="format"/>'s groups: 8 fp16 scales, then the codes.</summary>
    public static int BlockBytes(VnniPairFormat format) => 16 + (format == VnniPairFormat.Q8_0 ? 256 : 128);

    /// <summary>The machine code of one kernel (also what the disassembly test reads).</summary>
    internal static byte[] Generate(VnniPairFormat format, int pairs, int prefetchBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pairs, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pairs, MaxPairsOf(format));
        if (format == VnniPairFormat.Q4_K)
        {
            return GenerateQ4K(pairs, prefetchBytes);
        }

        if (format is VnniPairFormat.Affine8 or VnniPairFormat.Affine4)
        {
            return GenerateAffine(format == VnniPairFormat.Affine8, pairs, prefetchBytes);
        }

        const Gpr args = ArgsReg, group = GroupReg, blocks = CountReg, output = OutputReg;
        const int scales = 24, index = IndexReg, constant = 26, halves = 27, dotA = DotA, dotB = DotB;
        bool q8 = format == VnniPairFormat.Q8_0;

        var e = new X86Emitter();
        LoadArguments(e);
        e.VmovupsLoad(index, Mem.At(args, VnniPairArgs.IndexOffset));
        e.Vpbroadcastd(constant, Mem.At(args, q8 ? VnniPairArgs.SignsOffset : VnniPairArgs.NibblesOffset));
        for (int p = 0; p < pairs; p++)
        {
            e.Vpxord(p, p, p);
        }

        Label loop = e.NewLabel(), done = e.NewLabel();
        e.Test(blocks, blocks);
        e.Jz(done);
        e.Bind(loop);
        for (int line = 0; line < (q8 ? 4 : 2); line++)
        {
            e.Prefetcht0(Mem.At(group, 16 + prefetchBytes + 64 * line));   // the codes' lines, as the managed tiles
        }

        e.Vcvtph2psYmm(halves, Mem.At(group));
        e.Vpermps(scales, index, halves);
        Codes(e, group, 16, constant, signed: q8);                       // q8: w + 128
        for (int p = 0; p < pairs; p++)
        {
            CenteredPairDot(e, p);
            e.Vmulps(dotB, scales, dotB);
            e.Vfmadd231ps(p, dotA, dotB);
        }

        e.Add(group, BlockBytes(format));
        AdvancePairs(e, pairs);
        e.Dec(blocks);
        e.Jnz(loop);
        e.Bind(done);
        for (int p = 0; p < pairs; p++)
        {
            e.VmovupsStore(Mem.At(output, 64 * p), p);
        }

        e.Vzeroupper();
        e.Ret();
        return e.ToArray();
    }

    /// <summary>Bytes of one Q4_Kx8 super-block of 8 rows, and where its tables start (as QuantMatMul's KGroupBytes and offsets).</summary>
    private const int KGroupBytes = 8 * 128 + 2 * 64 + 2 * 16, KScalesOffset = 8 * 128, KMinsOffset = KScalesOffset + 64,
        KdOffset = KMinsOffset + 64, KdMinOffset = KdOffset + 16;

    /// <summary>
    /// A Q4_Kx8 kernel for <paramref name="pairs"/> pairs (a whole tile): the arithmetic of
    /// <see cref="QuantMatMul.DotGroupQ4_Kx8Pairs_512"/> with its sums in registers. Per sub-block: the nibble dot as
    /// Q4_0's, acc += dot · (d·sc · xs). Per super-block, after its 8 sub-blocks: the mins' scales of the 8 sub-blocks in
    /// zmm16..23 (the code registers are free then), and per pair mins = Σ_s mc_s · (xs·Σx)_s as 8 FMAs from zero in
    /// sub-block order, acc −= dmin · mins: the managed kernel's operations in its order, so the bits are the same, with
    /// no second bank of accumulators. rdi counts the sub-blocks, r10 and r11 point at the sub-block's scales and codes;
    /// r8 (the scaled sums) moves a super-block at a time.
    /// </summary>
    private static byte[] GenerateQ4K(int pairs, int prefetchBytes)
    {
        const Gpr args = ArgsReg, group = GroupReg, superBlocks = CountReg, x = XReg, xs = XsReg, xsum = XsumReg, output = OutputReg;
        const Gpr scalePtr = Gpr.R10, codePtr = Gpr.R11, subBlocks = Gpr.Rdi;
        const int codes = CodesReg, dsc = 24, index = IndexReg, nibbles = 26, temp = 27, dotA = DotA, dotB = DotB, bcastA = BcastA;

        var e = new X86Emitter();
        LoadArguments(e);
        e.VmovupsLoad(index, Mem.At(args, VnniPairArgs.IndexOffset));
        e.Vpbroadcastd(nibbles, Mem.At(args, VnniPairArgs.NibblesOffset));
        for (int p = 0; p < pairs; p++)
        {
            e.Vpxord(p, p, p);
        }

        Label outer = e.NewLabel(), inner = e.NewLabel(), done = e.NewLabel();
        e.Test(superBlocks, superBlocks);
        e.Jz(done);
        e.Bind(outer);
        for (int line = 0; line < 3; line++)
        {
            e.Prefetcht0(Mem.At(group, prefetchBytes + KScalesOffset + 64 * line));   // the tables' lines, as the managed tiles
        }

        e.Lea(codePtr, Mem.At(group));
        e.Lea(scalePtr, Mem.At(group, KScalesOffset));
        e.MovImm(subBlocks, 8);
        e.Bind(inner);
        e.Prefetcht0(Mem.At(codePtr, prefetchBytes));
        e.Prefetcht0(Mem.At(codePtr, prefetchBytes + 64));
        e.Vcvtph2psYmm(temp, Mem.At(group, KdOffset));
        e.Vpermps(dsc, index, temp);                                 // d
        e.VpmovzxbdYmm(temp, Mem.At(scalePtr));
        e.Vcvtdq2psYmm(temp, temp);
        e.Vpermps(temp, index, temp);
        e.Vmulps(dsc, dsc, temp);                                    // d · sc
        NibbleCodes(e, codePtr, 0, nibbles);

        for (int p = 0; p < pairs; p++)
        {
            PairDot(e, p);
            e.Vcvtdq2ps(dotA, dotA);
            e.Vbroadcastsd(dotB, Mem.At(xs, 8 * p));
            e.Vmulps(dotB, dsc, dotB);
            e.Vfmadd231ps(p, dotA, dotB);
        }

        e.Add(codePtr, 128);
        e.Add(scalePtr, 8);
        e.Add(x, 64 * pairs);
        e.Add(xs, 8 * pairs);
        e.Dec(subBlocks);
        e.Jnz(inner);

        // the super-block's mins: its 8 sub-blocks' mins scales, then per pair 8 FMAs and acc −= dmin · mins
        for (int s = 0; s < 8; s++)
        {
            e.VpmovzxbdYmm(codes + s, Mem.At(group, KMinsOffset + 8 * s));
            e.Vcvtdq2psYmm(codes + s, codes + s);
            e.Vpermps(codes + s, index, codes + s);
        }

        e.Vcvtph2psYmm(temp, Mem.At(group, KdMinOffset));
        e.Vpermps(dsc, index, temp);                                 // dmin
        for (int p = 0; p < pairs; p++)
        {
            e.Vpxord(dotA, dotA, dotA);
            for (int s = 0; s < 8; s++)
            {
                e.Vbroadcastsd(bcastA, Mem.At(xsum, 8 * (s * pairs + p)));
                e.Vfmadd231ps(dotA, codes + s, bcastA);
            }

            e.Vfnmadd231ps(p, dsc, dotA);
        }

        e.Add(xsum, 8 * 8 * pairs);
        e.Add(group, KGroupBytes);
        e.Dec(superBlocks);
        e.Jnz(outer);
        e.Bind(done);
        for (int p = 0; p < pairs; p++)
        {
            e.VmovupsStore(Mem.At(output, 64 * p), p);
        }

        e.Vzeroupper();
        e.Ret();
        return e.ToArray();
    }

    /// <summary>Bytes of an affine group's tables (8 bf16 scales, 8 bf16 biases), as QuantMatMul's AffineTableBytes.</summary>
    private const int AffineTableBytes = 32;

    /// <summary>
    /// An affine (MLX) kernel for <paramref name="pairs"/> pairs: the arithmetic of QuantMatMul's affine tiles
    /// (<c>DotGroupAffineX8N_256</c>, <see cref="QuantMatMul.DotGroupAffine4x8Pairs_512"/>) with each pair's part of the
    /// current affine group in a register (zmm0..): per block part += dot · xs, the dot as Q8_0's (8-bit, less 128·Σx) or
    /// Q4_0's (4-bit, less centre·Σx); per affine group, the accumulators in the output buffer (zeroed first) take
    /// acc = fma(s, part, acc), then acc = fma(fma(s, centre, bias), Σx of the group, acc). rbx (saved) points at the
    /// group's tables, r11 counts its blocks, r10 points at the pairs' activation sums of the group; rdi keeps the arguments.
    /// </summary>
    private static byte[] GenerateAffine(bool eightBit, int pairs, int prefetchBytes)
    {
        const Gpr args = ArgsReg, group = GroupReg, affineGroups = CountReg, output = OutputReg;
        const Gpr xg = Gpr.R10, blocks = Gpr.R11, tables = Gpr.Rbx;
        const int sg = 24, index = IndexReg, constant = 26, sh = 27, dotA = DotA, dotB = DotB;

        var e = new X86Emitter();
        e.Push(Gpr.Rbx);
        LoadArguments(e);
        e.MovLoad(xg, Mem.At(args, VnniPairArgs.XgOffset));
        e.VmovupsLoad(index, Mem.At(args, VnniPairArgs.IndexOffset));
        e.Vpbroadcastd(constant, Mem.At(args, eightBit ? VnniPairArgs.SignsOffset : VnniPairArgs.NibblesOffset));
        e.Vpxord(dotA, dotA, dotA);
        for (int p = 0; p < pairs; p++)
        {
            e.VmovupsStore(Mem.At(output, 64 * p), dotA);                     // the accumulators start at zero
        }

        Label outer = e.NewLabel(), inner = e.NewLabel(), done = e.NewLabel();
        e.Test(affineGroups, affineGroups);
        e.Jz(done);
        e.Bind(outer);
        for (int p = 0; p < pairs; p++)
        {
            e.Vpxord(p, p, p);                                               // the pairs' parts of this group
        }

        e.Mov(tables, group);
        e.Add(group, AffineTableBytes);                                      // the codes follow the tables
        e.MovLoad(blocks, Mem.At(args, VnniPairArgs.BlocksPerGroupOffset));
        e.Bind(inner);
        for (int line = 0; line < (eightBit ? 4 : 2); line++)
        {
            e.Prefetcht0(Mem.At(group, prefetchBytes + 64 * line));          // as the managed tiles
        }

        Codes(e, group, 0, constant, signed: eightBit);                  // 8-bit: (code − centre) + 128
        for (int p = 0; p < pairs; p++)
        {
            CenteredPairDot(e, p);
            e.Vfmadd231ps(p, dotA, dotB);                                    // part += dot · xs
        }

        e.Add(group, eightBit ? 256 : 128);
        AdvancePairs(e, pairs);
        e.Dec(blocks);
        e.Jnz(inner);

        // the group's tables: s (bf16 scales), sh = fma(s, centre, bias); then per pair the two FMAs into its accumulator
        e.VpmovzxwdYmm(sg, Mem.At(tables));
        e.VpslldYmm(sg, sg, 16);
        e.Vpermps(sg, index, sg);
        e.VpmovzxwdYmm(sh, Mem.At(tables, 16));
        e.VpslldYmm(sh, sh, 16);
        e.Vpermps(sh, index, sh);
        e.Vbroadcastss(dotA, Mem.At(args, VnniPairArgs.CentreOffset));
        e.Vfmadd231ps(sh, sg, dotA);
        for (int p = 0; p < pairs; p++)
        {
            e.VmovupsLoad(dotA, Mem.At(output, 64 * p));
            e.Vfmadd231ps(dotA, sg, p);
            e.Vbroadcastsd(dotB, Mem.At(xg, 8 * p));
            e.Vfmadd231ps(dotA, sh, dotB);
            e.VmovupsStore(Mem.At(output, 64 * p), dotA);
        }

        e.Add(xg, 8 * pairs);
        e.Dec(affineGroups);
        e.Jnz(outer);
        e.Bind(done);
        e.Pop(Gpr.Rbx);
        e.Vzeroupper();
        e.Ret();
        return e.ToArray();
    }
}

/// <summary>The arguments of a <see cref="VnniPairKernels"/> kernel (offsets fixed: the generated code reads them).</summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
internal unsafe struct VnniPairArgs
{
    public const int GroupOffset = 0, BlocksOffset = 8, XOffset = 16, XsOffset = 24, XsumOffset = 32, AccOffset = 40, SignsOffset = 48,
        NibblesOffset = 52, BlocksPerGroupOffset = 56, XgOffset = 64, CentreOffset = 72, IndexOffset = 128;

    /// <summary>The group's first block (its scales, then its codes; Q4_K: its first super-block; affine: its first affine group's tables).</summary>
    [FieldOffset(GroupOffset)]
    public byte* Group;

    /// <summary>Blocks of 32 columns (Q4_K: super-blocks of 256; affine: affine groups).</summary>
    [FieldOffset(BlocksOffset)]
    public long Blocks;

    /// <summary>The tile's paired activation codes (tile-major: per block, its pairs' 64-byte lines).</summary>
    [FieldOffset(XOffset)]
    public sbyte* X;

    /// <summary>The tile's paired activation scales (per block, per pair, 2 floats).</summary>
    [FieldOffset(XsOffset)]
    public float* Xs;

    /// <summary>The tile's paired activation code sums times the codes' offset (per block, per pair, 2 ints; Q4_K: the float scale · sum).</summary>
    [FieldOffset(XsumOffset)]
    public int* Xsum;

    /// <summary>Where the pairs' accumulators go: 16 floats each.</summary>
    [FieldOffset(AccOffset)]
    public float* Acc;

    /// <summary>0x80808080: the sign bit of every byte.</summary>
    [FieldOffset(SignsOffset)]
    public int Signs;

    /// <summary>0x0F0F0F0F: the low nibble of every byte.</summary>
    [FieldOffset(NibblesOffset)]
    public int Nibbles;

    /// <summary>Affine: blocks of 32 columns per affine group.</summary>
    [FieldOffset(BlocksPerGroupOffset)]
    public long BlocksPerGroup;

    /// <summary>Affine: the tile's paired float activation sums per affine group (per group, per pair, 2 floats).</summary>
    [FieldOffset(XgOffset)]
    public float* Xg;

    /// <summary>Affine: the codes' centre, as a float.</summary>
    [FieldOffset(CentreOffset)]
    public float Centre;

    /// <summary>0, 0, 1, 1, …, 7, 7: lane i of 8 row lanes into lanes 2i and 2i + 1.</summary>
    [FieldOffset(IndexOffset)]
    public fixed int Index[16];

    /// <summary>The arguments for one call, with the constants set.</summary>
    public static VnniPairArgs Create(byte* group, long blocks, sbyte* x, float* xs, int* xsum, float* acc)
    {
        var a = new VnniPairArgs
        {
            Group = group, Blocks = blocks, X = x, Xs = xs, Xsum = xsum, Acc = acc, Signs = unchecked((int)0x80808080), Nibbles = 0x0F0F0F0F,
        };
        for (int i = 0; i < 16; i++)
        {
            a.Index[i] = i / 2;
        }

        return a;
    }
}
