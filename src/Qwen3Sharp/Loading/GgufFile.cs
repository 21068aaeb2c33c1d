using System.Text;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

/// <summary>GGML tensor type ids (ggml.h <c>enum ggml_type</c>) that a GGUF file may name.</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
}

/// <summary>One tensor's entry in a GGUF file: <see cref="Dims"/> in GGML order (ne[0], the row length, first).</summary>
public sealed record GgufTensorInfo(string Name, GgmlType Type, IReadOnlyList<long> Dims, long Offset, long ByteCount)
{
    public long ElementCount => Dims.Aggregate(1L, (a, d) => a * d);

    /// <summary>The row-major shape as PyTorch and safetensors write it (GGML order reversed).</summary>
    public long[] Shape => Dims.Reverse().ToArray();

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// A GGUF file (versions 2 and 3), memory-mapped: the key-value metadata, parsed and validated up front, and the
/// tensors used in place. Layout (llama.cpp gguf-py/gguf/constants.py, ggml/include/gguf.h): little-endian;
/// "GGUF", u32 version, u64 tensor count, u64 kv count; each kv = string key, u32 value type, value; each tensor
/// info = string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset relative to the data section, which
/// starts at the next multiple of <c>general.alignment</c> (default 32) after the infos. Every count, length,
/// dimension and offset is checked against the file before use: a malformed file is a
/// <see cref="ModelFormatException"/>, never an out-of-range read.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    private const uint Magic = 0x46554747;        // "GGUF" little-endian
    private const long MaxDimension = 1L << 40;
    private const int MaxDims = 4;

    private readonly FileMapping _mapping;
    private byte* _base;          // start of the file; null once disposed
    private readonly long _dataStart;
    private readonly Dictionary<string, GgufTensorInfo> _tensors;

    private GgufFile(string path, FileMapping mapping, int version, long dataStart, Dictionary<string, object> metadata,
        Dictionary<string, GgufTensorInfo> tensors)
    {
        FilePath = path;
        _mapping = mapping;
        _base = mapping.Base;
        FileBytes = mapping.Length;
        Version = version;
        _dataStart = dataStart;
        Metadata = metadata;
        _tensors = tensors;
    }

    public string FilePath { get; }

    public long FileBytes { get; }

    public int Version { get; }

    /// <summary>Values: long (every integer type), double (f32/f64), bool, string, or object[] for arrays.</summary>
    public IReadOnlyDictionary<string, object> Metadata { get; }

    public IReadOnlyDictionary<string, GgufTensorInfo> Tensors => _tensors;

    /// <summary>True when the file starts with the GGUF magic (how the loaders tell a GGUF file from a directory).</summary>
    public static bool HasMagic(string path)
    {
        if (!File.Exists(path))
        {
            return false;
        }

        using FileStream f = File.OpenRead(path);
        Span<byte> head = stackalloc byte[4];
        return f.ReadAtLeast(head, 4, throwOnEndOfStream: false) == 4 && BitConverter.ToUInt32(head) == Magic;
    }

    /// <exception cref="ModelFormatException">The file is missing, truncated or malformed.</exception>
    public static GgufFile Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFormatException(path, null, "file not found");
        }

        FileMapping mapping = FileMapping.Open(path, 24, "fewer than the 24-byte GGUF header");
        try
        {
            byte* basePtr = mapping.Base;
            long fileBytes = mapping.Length;
            var reader = new Reader(path, basePtr, fileBytes);
            if (reader.U32() != Magic)
            {
                throw new ModelFormatException(path, null, "not a GGUF file (the first 4 bytes are not \"GGUF\")");
            }

            uint version = reader.U32();
            if (version is not (2 or 3))
            {
                throw new ModelFormatException(path, null, $"GGUF version {version} is not supported (2 and 3 are)");
            }

            ulong tensorCount = reader.U64(), kvCount = reader.U64();
            // Each kv needs at least 8 + 4 + 1 bytes and each tensor info 8 + 4 + 8 + 4 + 8: counts beyond that are lies.
            if (kvCount > (ulong)fileBytes / 13 || tensorCount > (ulong)fileBytes / 32)
            {
                throw new ModelFormatException(path, null, $"absurd counts: {tensorCount} tensors and {kvCount} metadata entries in a {fileBytes}-byte file");
            }

            var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
            for (ulong i = 0; i < kvCount; i++)
            {
                string key = reader.String();
                uint type = reader.U32();
                if (!metadata.TryAdd(key, reader.Value(type, key, depth: 0)))
                {
                    throw new ModelFormatException(path, key, "metadata key appears twice");
                }
            }

            long alignment = 32;
            if (metadata.TryGetValue("general.alignment", out object? a))
            {
                alignment = a is long l && l > 0 && l <= 1 << 20 && (l & (l - 1)) == 0 ? l
                    : throw new ModelFormatException(path, "general.alignment", $"{a} is not a power of two up to 1 MiB");
            }

            var infos = new List<GgufTensorInfo>((int)tensorCount);
            var tensors = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
            for (ulong i = 0; i < tensorCount; i++)
            {
                string name = reader.String();
                uint dimCount = reader.U32();
                if (dimCount is 0 or > MaxDims)
                {
                    throw new ModelFormatException(path, name, $"{dimCount} dimensions (1 to {MaxDims} are valid)");
                }

                var dims = new long[dimCount];
                long elements = 1;
                for (int d = 0; d < dimCount; d++)
                {
                    ulong n = reader.U64();
                    if (n == 0 || n > MaxDimension)
                    {
                        throw new ModelFormatException(path, name, $"dimension {d} is {n}");
                    }

                    dims[d] = (long)n;
                    elements = elements > long.MaxValue / (long)n ? throw new ModelFormatException(path, name, "element count overflows") : elements * (long)n;
                }

                uint typeId = reader.U32();
                var type = (GgmlType)typeId;
                if (!Enum.IsDefined(type))
                {
                    throw new ModelFormatException(path, name, $"unknown GGML tensor type id {typeId}");
                }

                ulong offset = reader.U64();
                long bytes = TensorBytes(path, name, type, dims);
                if (offset % (ulong)alignment != 0)
                {
                    throw new ModelFormatException(path, name, $"offset {offset} is not a multiple of the alignment {alignment}");
                }

                var info = new GgufTensorInfo(name, type, dims, (long)Math.Min(offset, (ulong)long.MaxValue), bytes);
                if (!tensors.TryAdd(name, info))
                {
                    throw new ModelFormatException(path, name, "tensor name appears twice");
                }

                infos.Add(info);
            }

            long dataStart = (reader.Position + alignment - 1) / alignment * alignment;
            long dataBytes = fileBytes - dataStart;
            foreach (GgufTensorInfo t in infos)
            {
                if (t.Offset > dataBytes || t.ByteCount > dataBytes - t.Offset)
                {
                    throw new ModelFormatException(path, t.Name,
                        $"data [{t.Offset}, {t.Offset + t.ByteCount}) lies outside the data section ({Math.Max(0, dataBytes)} bytes): truncated or corrupt");
                }
            }

            GgufTensorInfo? previous = null;
            foreach (GgufTensorInfo t in infos.OrderBy(t => t.Offset))
            {
                if (previous is not null && t.Offset < previous.Offset + previous.ByteCount)
                {
                    throw new ModelFormatException(path, t.Name, $"data overlaps tensor '{previous.Name}'");
                }

                previous = t;
            }

            return new GgufFile(path, mapping, (int)version, dataStart, metadata, tensors);
        }
        catch
        {
            mapping.Dispose();
            throw;
        }
    }

    /// <summary>Bytes of a tensor: (elements per block, bytes per block) from ggml's type traits.</summary>
    private static long TensorBytes(string path, string name, GgmlType type, long[] dims)
    {
        (int block, int bytes) = type switch
        {
            GgmlType.F32 or GgmlType.I32 => (1, 4),
            GgmlType.F16 or GgmlType.BF16 or GgmlType.I16 => (1, 2),
            GgmlType.I8 => (1, 1),
            GgmlType.F64 or GgmlType.I64 => (1, 8),
            GgmlType.Q4_0 => (32, 18),
            GgmlType.Q4_1 => (32, 20),
            GgmlType.Q5_0 => (32, 22),
            GgmlType.Q5_1 => (32, 24),
            GgmlType.Q8_0 => (32, 34),
            GgmlType.Q8_1 => (32, 36),
            GgmlType.Q2_K => (256, 84),
            GgmlType.Q3_K => (256, 110),
            GgmlType.Q4_K => (256, 144),
            GgmlType.Q5_K => (256, 176),
            GgmlType.Q6_K => (256, 210),
            GgmlType.Q8_K => (256, 292),
            GgmlType.IQ4_NL => (32, 18),
            GgmlType.IQ4_XS => (256, 136),
            _ => (0, 0),
        };
        if (block == 0)
        {
            throw new ModelFormatException(path, name, $"tensor type {type} is not supported");
        }

        if (dims[0] % block != 0)
        {
            throw new ModelFormatException(path, name, $"row length {dims[0]} is not a multiple of {type}'s block of {block}");
        }

        long rows = 1;
        for (int d = 1; d < dims.Length; d++)
        {
            rows *= dims[d];
        }

        long rowBytes = dims[0] / block * bytes;
        return rows > long.MaxValue / rowBytes ? throw new ModelFormatException(path, name, "size overflows") : rows * rowBytes;
    }

    public GgufTensorInfo GetInfo(string name) =>
        _tensors.TryGetValue(name, out GgufTensorInfo? info) ? info : throw new ModelFormatException(FilePath, name, "no such tensor");

    private byte* DataPointer(GgufTensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        return _base + _dataStart + info.Offset;
    }

    /// <summary>A 2-D tensor in place, as [rows = ne[1], cols = ne[0]].</summary>
    /// <exception cref="ModelFormatException">Not 2-D, or its type is not one the kernels run (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K).</exception>
    public WeightView GetMatrix(string name)
    {
        GgufTensorInfo info = GetInfo(name);
        if (info.Dims.Count != 2 || info.Dims[0] > int.MaxValue || info.Dims[1] > int.MaxValue)
        {
            throw new ModelFormatException(FilePath, name, $"expected a 2-D matrix, found shape {info.ShapeText}");
        }

        DType dtype = info.Type switch
        {
            GgmlType.F32 => DType.F32,
            GgmlType.F16 => DType.F16,
            GgmlType.BF16 => DType.BF16,
            GgmlType.Q8_0 => DType.Q8_0,
            GgmlType.Q4_0 => DType.Q4_0,
            GgmlType.Q4_K => DType.Q4_K,
            GgmlType.Q5_K => DType.Q5_K,
            GgmlType.Q6_K => DType.Q6_K,
            _ => throw new ModelFormatException(FilePath, name,
                $"tensor type {info.Type} is not supported yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)"),
        };
        return new WeightView(DataPointer(info), dtype, (int)info.Dims[1], (int)info.Dims[0]);
    }

    /// <summary>A small tensor (norm weights, biases) converted to float32.</summary>
    public float[] ReadFloats(string name)
    {
        GgufTensorInfo info = GetInfo(name);
        if (info.ElementCount > 1 << 26)
        {
            throw new ModelFormatException(FilePath, name, $"too large to convert to float32 ({info.ElementCount} elements)");
        }

        var result = new float[info.ElementCount];
        byte* p = DataPointer(info);
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = info.Type switch
            {
                GgmlType.F32 => ((float*)p)[i],
                GgmlType.F16 => (float)((Half*)p)[i],
                GgmlType.BF16 => BitConverter.Int32BitsToSingle(((ushort*)p)[i] << 16),
                _ => throw new ModelFormatException(FilePath, name, $"a vector of type {info.Type} (expected F32, F16 or BF16)"),
            };
        }

        return result;
    }

    /// <summary>The file's mapping (a load reads matrices through its handle: <see cref="MappedFiles"/>).</summary>
    internal FileMapping Mapping => _mapping;

    public void Dispose()
    {
        if (_base != null)
        {
            _base = null;
            _mapping.Dispose();
        }
    }

    /// <summary>A bounds-checked little-endian cursor over the mapped header.</summary>
    private struct Reader(string path, byte* data, long length)
    {
        private const int MaxArrayDepth = 2;

        public long Position { get; private set; }

        private byte* Take(long count, string what)
        {
            if (count < 0 || count > length - Position)
            {
                throw new ModelFormatException(path, null, $"truncated: {what} at byte {Position} needs {count} bytes; the file has {length - Position} left");
            }

            byte* p = data + Position;
            Position += count;
            return p;
        }

        public uint U32() => *(uint*)Take(4, "a u32");

        public ulong U64() => *(ulong*)Take(8, "a u64");

        public string String()
        {
            ulong n = U64();
            if (n > (ulong)(length - Position))
            {
                throw new ModelFormatException(path, null, $"truncated: a string of {n} bytes at byte {Position} runs past the end of the file");
            }

            byte* p = Take((long)n, "a string");
            try
            {
                return new UTF8Encoding(false, true).GetString(p, (int)Math.Min(n, int.MaxValue));
            }
            catch (DecoderFallbackException)
            {
                throw new ModelFormatException(path, null, $"a string at byte {Position - (long)n} is not valid UTF-8");
            }
        }

        public object Value(uint type, string key, int depth) => type switch
        {
            0 => (long)*Take(1, key),
            1 => (long)*(sbyte*)Take(1, key),
            2 => (long)*(ushort*)Take(2, key),
            3 => (long)*(short*)Take(2, key),
            4 => (long)*(uint*)Take(4, key),
            5 => (long)*(int*)Take(4, key),
            6 => (double)*(float*)Take(4, key),
            7 => *Take(1, key) switch
            {
                0 => false,
                1 => true,
                byte b => throw new ModelFormatException(path, key, $"bool value {b} (0 or 1 are valid)"),
            },
            8 => String(),
            9 => Array(key, depth),
            10 => (long)*(ulong*)Take(8, key),
            11 => *(long*)Take(8, key),
            12 => *(double*)Take(8, key),
            _ => throw new ModelFormatException(path, key, $"unknown metadata value type {type}"),
        };

        private object[] Array(string key, int depth)
        {
            if (depth >= MaxArrayDepth)
            {
                throw new ModelFormatException(path, key, "arrays nested too deeply");
            }

            uint elementType = U32();
            ulong count = U64();
            if (count > (ulong)(length - Position))   // every element takes at least one byte
            {
                throw new ModelFormatException(path, key, $"array of {count} elements runs past the end of the file");
            }

            var items = new object[count];
            for (ulong i = 0; i < count; i++)
            {
                items[i] = Value(elementType, key, depth + 1);
            }

            return items;
        }
    }
}
