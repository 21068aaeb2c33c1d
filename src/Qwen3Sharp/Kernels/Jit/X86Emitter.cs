namespace Qwen3Sharp.Kernels.Jit;

/// <summary>x86-64 general-purpose registers by their encoding number.</summary>
internal enum Gpr
{
    Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8, R9, R10, R11, R12, R13, R14, R15,
}

/// <summary>A memory operand <c>[Base + Index·Scale + Displacement]</c> (no index when <see cref="Index"/> is null).</summary>
internal readonly record struct Mem(Gpr Base, Gpr? Index = null, int Scale = 1, int Displacement = 0)
{
    public static Mem At(Gpr b, int displacement = 0) => new(b, null, 1, displacement);
}

/// <summary>A jump target inside one <see cref="X86Emitter"/>.</summary>
internal readonly record struct Label(int Id);

/// <summary>
/// A tiny x86-64 assembler for exactly the instructions the generated kernels use: EVEX-encoded 512-bit
/// <c>vdpbf16ps</c>, <c>vpdpbusd</c>, <c>vmovups</c>, the broadcasts, <c>vpxord</c>, <c>vpandd</c>, <c>vpsrld</c>, <c>vpaddd</c>, <c>vpsubd</c>,
/// <c>vpermd</c>/<c>vpermps</c>, <c>vcvtdq2ps</c>, <c>vmulps</c>, <c>vfmadd231ps</c>, <c>vfnmadd231ps</c> and 256-bit
/// <c>vcvtph2ps</c>, <c>vpmovzxbd</c> and <c>vcvtdq2ps</c>
/// (zmm0..zmm31, full-vector and embedded-broadcast memory forms with compressed disp8), and the integer loop control
/// around them (<c>mov</c>, <c>lea</c>, <c>add</c>, <c>sub</c>, <c>dec</c>, <c>test</c>, <c>jz</c>/<c>jnz</c>,
/// <c>push</c>, <c>pop</c>, <c>prefetcht0</c>, <c>vzeroupper</c>, <c>ret</c>).
/// </summary>
/// <remarks>
/// Encodings follow the Intel SDM vol. 2 (§2.2 REX, §2.7 EVEX, §2.7.5 disp8·N). The tests disassemble the output
/// with binutils <c>objdump</c> and compare it with the intended instruction text, so every form used here is
/// checked against an independent decoder. Jumps are always rel32, resolved by <see cref="ToArray"/>.
/// </remarks>
internal sealed class X86Emitter
{
    private readonly List<byte> _code = [];
    private readonly List<int> _labelOffsets = [];
    private readonly List<(int At, Label Target)> _fixups = [];

    /// <summary>Bytes emitted so far.</summary>
    public int Length => _code.Count;

    // ----- labels and control flow -----

    public Label NewLabel()
    {
        _labelOffsets.Add(-1);
        return new Label(_labelOffsets.Count - 1);
    }

    public void Bind(Label label)
    {
        if (_labelOffsets[label.Id] >= 0)
        {
            throw new InvalidOperationException($"label {label.Id} is bound twice");
        }

        _labelOffsets[label.Id] = _code.Count;
    }

    /// <summary><c>jnz rel32</c>.</summary>
    public void Jnz(Label target) => JumpCc(0x85, target);

    /// <summary><c>jz rel32</c>.</summary>
    public void Jz(Label target) => JumpCc(0x84, target);

    private void JumpCc(byte opcode, Label target)
    {
        Emit(0x0F, opcode);
        _fixups.Add((_code.Count, target));
        Emit32(0);
    }

    public void Ret() => Emit(0xC3);

    /// <summary><c>vzeroupper</c> (VEX C5 F8 77): leave no dirty upper state behind for SSE code.</summary>
    public void Vzeroupper() => Emit(0xC5, 0xF8, 0x77);

    // ----- general-purpose registers -----

    public void Push(Gpr r)
    {
        if ((int)r >= 8)
        {
            Emit(0x41);
        }

        Emit((byte)(0x50 + ((int)r & 7)));
    }

    public void Pop(Gpr r)
    {
        if ((int)r >= 8)
        {
            Emit(0x41);
        }

        Emit((byte)(0x58 + ((int)r & 7)));
    }

    /// <summary><c>mov dst, src</c> (64-bit).</summary>
    public void Mov(Gpr dst, Gpr src) => RegReg(0x89, src, dst);

    /// <summary><c>mov dst, imm32</c> (sign-extended to 64 bits).</summary>
    public void MovImm(Gpr dst, int imm)
    {
        Emit(Rex(w: true, r: 0, x: 0, b: (int)dst), 0xC7);
        Emit(ModRm(3, 0, (int)dst));
        Emit32(imm);
    }

    /// <summary><c>add dst, src</c> (64-bit).</summary>
    public void Add(Gpr dst, Gpr src) => RegReg(0x01, src, dst);

    /// <summary><c>test a, b</c> (64-bit).</summary>
    public void Test(Gpr a, Gpr b) => RegReg(0x85, b, a);

    /// <summary><c>add dst, imm</c> (64-bit; imm8 form when it fits).</summary>
    public void Add(Gpr dst, int imm) => AluImm(0, dst, imm);

    /// <summary><c>sub dst, imm</c> (64-bit; imm8 form when it fits).</summary>
    public void Sub(Gpr dst, int imm) => AluImm(5, dst, imm);

    /// <summary><c>dec r</c> (64-bit).</summary>
    public void Dec(Gpr r)
    {
        Emit(Rex(w: true, r: 0, x: 0, b: (int)r), 0xFF);
        Emit(ModRm(3, 1, (int)r));
    }

    /// <summary><c>mov dst, qword [mem]</c>.</summary>
    public void MovLoad(Gpr dst, Mem m)
    {
        Emit(Rex(w: true, r: (int)dst, x: m.Index is { } i ? (int)i : 0, b: (int)m.Base), 0x8B);
        MemoryOperand((int)dst, m, 1);
    }

    /// <summary><c>prefetcht0 [mem]</c>.</summary>
    public void Prefetcht0(Mem m)
    {
        int index = m.Index is { } i ? (int)i : 0;
        if (((int)m.Base | index) >= 8)
        {
            Emit((byte)(0x40 | ((index >> 3) & 1) << 1 | (((int)m.Base >> 3) & 1)));
        }

        Emit(0x0F, 0x18);
        MemoryOperand(1, m, 1);
    }

    /// <summary><c>lea dst, [mem]</c> (64-bit).</summary>
    public void Lea(Gpr dst, Mem m)
    {
        Emit(Rex(w: true, r: (int)dst, x: m.Index is { } i ? (int)i : 0, b: (int)m.Base), 0x8D);
        MemoryOperand((int)dst, m, 1);
    }

    private void RegReg(byte opcode, Gpr reg, Gpr rm)
    {
        Emit(Rex(w: true, r: (int)reg, x: 0, b: (int)rm), opcode);
        Emit(ModRm(3, (int)reg, (int)rm));
    }

    private void AluImm(int ext, Gpr dst, int imm)
    {
        bool small = imm is >= sbyte.MinValue and <= sbyte.MaxValue;
        Emit(Rex(w: true, r: 0, x: 0, b: (int)dst), small ? (byte)0x83 : (byte)0x81);
        Emit(ModRm(3, ext, (int)dst));
        if (small)
        {
            Emit((byte)(sbyte)imm);
        }
        else
        {
            Emit32(imm);
        }
    }

    private static byte Rex(bool w, int r, int x, int b)
        => (byte)(0x40 | (w ? 8 : 0) | ((r >> 3) & 1) << 2 | ((x >> 3) & 1) << 1 | ((b >> 3) & 1));

    // ----- 512-bit EVEX instructions -----

    /// <summary><c>vdpbf16ps zmm<paramref name="dst"/>, zmm<paramref name="a"/>, zmm<paramref name="b"/></c>: dst.fp32[i] += a.bf16[2i]·b.bf16[2i] + a.bf16[2i+1]·b.bf16[2i+1].</summary>
    public void Vdpbf16ps(int dst, int a, int b) => EvexRegReg(pp: 2, map: 2, 0x52, dst, a, b);

    /// <summary><c>vdpbf16ps zmm, zmm, [mem]</c>, or <c>[mem]{1to16}</c> (one bf16 pair broadcast) when <paramref name="broadcast"/>.</summary>
    public void Vdpbf16ps(int dst, int a, Mem m, bool broadcast)
        => EvexRegMem(pp: 2, map: 2, 0x52, dst, a, m, broadcast, broadcast ? 4 : 64);

    /// <summary><c>vmovups zmm, [mem]</c>.</summary>
    public void VmovupsLoad(int dst, Mem m) => EvexRegMem(pp: 0, map: 1, 0x10, dst, -1, m, false, 64);

    /// <summary><c>vmovups [mem], zmm</c>.</summary>
    public void VmovupsStore(Mem m, int src) => EvexRegMem(pp: 0, map: 1, 0x11, src, -1, m, false, 64);

    /// <summary><c>vbroadcastss zmm, dword [mem]</c>.</summary>
    public void Vbroadcastss(int dst, Mem m) => EvexRegMem(pp: 1, map: 2, 0x18, dst, -1, m, false, 4);

    /// <summary><c>vpbroadcastd zmm, dword [mem]</c>.</summary>
    public void Vpbroadcastd(int dst, Mem m) => EvexRegMem(pp: 1, map: 2, 0x58, dst, -1, m, false, 4);

    /// <summary><c>vpxord zmm, zmm, zmm</c> (AVX512F; <c>vpxord z, z, z</c> zeroes z).</summary>
    public void Vpxord(int dst, int a, int b) => EvexRegReg(pp: 1, map: 1, 0xEF, dst, a, b);

    /// <summary><c>vpdpbusd zmm<paramref name="dst"/>, zmm<paramref name="a"/>, zmm<paramref name="b"/></c> (AVX512_VNNI): each dword of dst += Σ of its four u8(a)·s8(b).</summary>
    public void Vpdpbusd(int dst, int a, int b) => EvexRegReg(pp: 1, map: 2, 0x50, dst, a, b);

    /// <summary><c>vpandd zmm, zmm, zmm</c>.</summary>
    public void Vpandd(int dst, int a, int b) => EvexRegReg(pp: 1, map: 1, 0xDB, dst, a, b);

    /// <summary><c>vpsrld zmm<paramref name="dst"/>, zmm<paramref name="src"/>, imm8</c> (EVEX.vvvv names the destination, ModRM.reg is /2).</summary>
    public void Vpsrld(int dst, int src, byte shift)
    {
        EvexRegReg(pp: 1, map: 1, 0x72, 2, dst, src);
        Emit(shift);
    }

    /// <summary><c>vpaddd zmm, zmm, zmm</c>.</summary>
    public void Vpaddd(int dst, int a, int b) => EvexRegReg(pp: 1, map: 1, 0xFE, dst, a, b);

    /// <summary><c>vpsubd zmm<paramref name="dst"/>, zmm<paramref name="a"/>, zmm<paramref name="b"/></c>: dst = a − b.</summary>
    public void Vpsubd(int dst, int a, int b) => EvexRegReg(pp: 1, map: 1, 0xFA, dst, a, b);

    /// <summary><c>vpermd zmm<paramref name="dst"/>, zmm<paramref name="index"/>, zmm<paramref name="table"/></c>: dst.dword[i] = table.dword[index.dword[i] mod 16].</summary>
    public void Vpermd(int dst, int index, int table) => EvexRegReg(pp: 1, map: 2, 0x36, dst, index, table);

    /// <summary><c>vpermps zmm<paramref name="dst"/>, zmm<paramref name="index"/>, zmm<paramref name="table"/></c>.</summary>
    public void Vpermps(int dst, int index, int table) => EvexRegReg(pp: 1, map: 2, 0x16, dst, index, table);

    /// <summary><c>vcvtdq2ps zmm, zmm</c>.</summary>
    public void Vcvtdq2ps(int dst, int src) => EvexRegReg(pp: 0, map: 1, 0x5B, dst, -1, src);

    /// <summary><c>vcvtdq2ps ymm, ymm</c> (EVEX.256).</summary>
    public void Vcvtdq2psYmm(int dst, int src) => EvexRegReg(pp: 0, map: 1, 0x5B, dst, -1, src, vectorLength: 1);

    /// <summary><c>vpmovzxwd ymm, xmmword [mem]</c> (EVEX.256): 8 words zero-extended to dwords.</summary>
    public void VpmovzxwdYmm(int dst, Mem m) => EvexRegMem(pp: 1, map: 2, 0x33, dst, -1, m, false, 16, vectorLength: 1);

    /// <summary><c>vpslld ymm<paramref name="dst"/>, ymm<paramref name="src"/>, imm8</c> (EVEX.256; vvvv names the destination, ModRM.reg is /6).</summary>
    public void VpslldYmm(int dst, int src, byte shift)
    {
        EvexRegReg(pp: 1, map: 1, 0x72, 6, dst, src, vectorLength: 1);
        Emit(shift);
    }

    /// <summary><c>vpmovzxbd ymm, qword [mem]</c> (EVEX.256): 8 bytes zero-extended to dwords.</summary>
    public void VpmovzxbdYmm(int dst, Mem m) => EvexRegMem(pp: 1, map: 2, 0x31, dst, -1, m, false, 8, vectorLength: 1);

    /// <summary><c>vfnmadd231ps zmm<paramref name="dst"/>, zmm<paramref name="a"/>, zmm<paramref name="b"/></c>: dst = −(a·b) + dst, one rounding.</summary>
    public void Vfnmadd231ps(int dst, int a, int b) => EvexRegReg(pp: 1, map: 2, 0xBC, dst, a, b);

    /// <summary><c>vmulps zmm, zmm, zmm</c>.</summary>
    public void Vmulps(int dst, int a, int b) => EvexRegReg(pp: 0, map: 1, 0x59, dst, a, b);

    /// <summary><c>vfmadd231ps zmm<paramref name="dst"/>, zmm<paramref name="a"/>, zmm<paramref name="b"/></c>: dst = a·b + dst, one rounding.</summary>
    public void Vfmadd231ps(int dst, int a, int b) => EvexRegReg(pp: 1, map: 2, 0xB8, dst, a, b);

    /// <summary><c>vpbroadcastq zmm, qword [mem]</c>.</summary>
    public void Vpbroadcastq(int dst, Mem m) => EvexRegMem(pp: 1, map: 2, 0x59, dst, -1, m, false, 8, w: true);

    /// <summary><c>vbroadcastsd zmm, qword [mem]</c>.</summary>
    public void Vbroadcastsd(int dst, Mem m) => EvexRegMem(pp: 1, map: 2, 0x19, dst, -1, m, false, 8, w: true);

    /// <summary><c>vbroadcasti64x4 zmm, ymmword [mem]</c>: the 32 bytes at mem in both halves.</summary>
    public void Vbroadcasti64x4(int dst, Mem m) => EvexRegMem(pp: 1, map: 2, 0x5B, dst, -1, m, false, 32, w: true);

    /// <summary><c>vcvtph2ps ymm, xmmword [mem]</c> (EVEX.256): 8 fp16 values to float32, exactly.</summary>
    public void Vcvtph2psYmm(int dst, Mem m) => EvexRegMem(pp: 1, map: 2, 0x13, dst, -1, m, false, 16, vectorLength: 1);

    /// <summary><paramref name="vvvv"/> -1: the instruction has no second source (encoded 1111b, V'=1).</summary>
    private void EvexRegReg(int pp, int map, byte opcode, int reg, int vvvv, int rm, int vectorLength = 2)
    {
        CheckZmm(reg);
        if (vvvv >= 0)
        {
            CheckZmm(vvvv);
        }

        CheckZmm(rm);
        // P0: R X B R' 0 m m m — X extends a register rm to zmm16..31.
        Emit(0x62, EvexP0(reg, x: (rm >> 4) & 1, b: (rm >> 3) & 1, map));
        Emit(EvexP1(vvvv, pp, w: false), EvexP2(vvvv, broadcast: false, vectorLength));
        Emit(opcode, ModRm(3, reg, rm));
    }

    /// <summary>
    /// <paramref name="vvvv"/> -1: the instruction has no second source (encoded 1111b, V'=1); <paramref name="vectorLength"/>
    /// L'L (2: 512 bits, 1: 256).
    /// </summary>
    private void EvexRegMem(int pp, int map, byte opcode, int reg, int vvvv, Mem m, bool broadcast, int disp8Scale, bool w = false, int vectorLength = 2)
    {
        CheckZmm(reg);
        if (vvvv >= 0)
        {
            CheckZmm(vvvv);
        }

        int index = m.Index is { } i ? (int)i : 0;
        Emit(0x62, EvexP0(reg, x: (index >> 3) & 1, b: ((int)m.Base >> 3) & 1, map));
        Emit(EvexP1(vvvv, pp, w), EvexP2(vvvv, broadcast, vectorLength));
        Emit(opcode);
        MemoryOperand(reg, m, disp8Scale);
    }

    private static byte EvexP0(int reg, int x, int b, int map)
        => (byte)((~reg >> 3 & 1) << 7 | (~x & 1) << 6 | (~b & 1) << 5 | (~reg >> 4 & 1) << 4 | map);

    // W, vvvv inverted (1111b when there is none), the fixed 1, pp.
    private static byte EvexP1(int vvvv, int pp, bool w) => (byte)((w ? 1 : 0) << 7 | (~Math.Max(vvvv, 0) & 15) << 3 | 1 << 2 | pp);

    // z=0, L'L, b, V' inverted (1 when there is no vvvv), no mask (k0).
    private static byte EvexP2(int vvvv, bool broadcast, int vectorLength)
        => (byte)(vectorLength << 5 | (broadcast ? 1 : 0) << 4 | (~Math.Max(vvvv, 0) >> 4 & 1) << 3);

    private static void CheckZmm(int r)
    {
        if ((uint)r > 31)
        {
            throw new ArgumentOutOfRangeException(nameof(r), r, "zmm registers are 0..31");
        }
    }

    // ----- ModRM / SIB / displacement -----

    private static byte ModRm(int mod, int reg, int rm) => (byte)(mod << 6 | (reg & 7) << 3 | (rm & 7));

    /// <summary>ModRM, SIB and displacement for <paramref name="m"/>; disp8 is scaled by <paramref name="disp8Scale"/> (EVEX disp8·N, 1 for legacy).</summary>
    private void MemoryOperand(int reg, Mem m, int disp8Scale)
    {
        int b = (int)m.Base;
        if (m.Index == Gpr.Rsp)
        {
            throw new ArgumentException("rsp cannot be an index register", nameof(m));
        }

        int scaleBits = m.Scale switch
        {
            1 => 0, 2 => 1, 4 => 2, 8 => 3,
            _ => throw new ArgumentException($"scale {m.Scale} is not 1, 2, 4 or 8", nameof(m)),
        };
        bool sib = m.Index is not null || (b & 7) == 4;             // rsp/r12 as base need a SIB byte
        int d = m.Displacement;
        int mod = d == 0 && (b & 7) != 5 ? 0                         // rbp/r13 as base need a displacement
            : d % disp8Scale == 0 && d / disp8Scale is >= sbyte.MinValue and <= sbyte.MaxValue ? 1
            : 2;
        Emit(ModRm(mod, reg, sib ? 4 : b));
        if (sib)
        {
            int index = m.Index is { } i ? (int)i : 4;                // 100b: no index
            Emit((byte)(scaleBits << 6 | (index & 7) << 3 | (b & 7)));
        }

        if (mod == 1)
        {
            Emit((byte)(sbyte)(d / disp8Scale));
        }
        else if (mod == 2)
        {
            Emit32(d);
        }
    }

    // ----- output -----

    /// <summary>The code with every jump resolved (throws for a jump to a label never bound).</summary>
    public byte[] ToArray()
    {
        byte[] code = [.. _code];
        foreach ((int at, Label target) in _fixups)
        {
            int to = _labelOffsets[target.Id];
            if (to < 0)
            {
                throw new InvalidOperationException($"label {target.Id} is used but never bound");
            }

            BitConverter.TryWriteBytes(code.AsSpan(at, 4), to - (at + 4));
        }

        return code;
    }

    private void Emit(params ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            _code.Add(b);
        }
    }

    private void Emit32(int value)
    {
        Span<byte> b = stackalloc byte[4];
        BitConverter.TryWriteBytes(b, value);
        Emit(b);
    }
}
