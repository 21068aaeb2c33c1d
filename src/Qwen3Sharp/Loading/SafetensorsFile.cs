using System.Buffers.Binary;
using System.Text.Json;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

/// <summary>One tensor's header entry: dtype, shape and byte range within the data region.</summary>
public sealed record SafetensorsTensorInfo(string Name, DType DType, IReadOnlyList<long> Shape, long DataBegin, long DataEnd)
{
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Shape)
            {
                n *= d;
            }

            return n;
        }
    }

    public long ByteCount => DataEnd - DataBegin;

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// A memory-mapped <c>.safetensors</c> file: an 8-byte little-endian header length, a JSON header
/// (<c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}</c>), then the data region.
/// The header is validated completely on <see cref="Open"/>; tensors are then used in place through
/// <see cref="GetMatrix"/> (no copy) for as long as this object is not disposed.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>The safetensors format's own limit on the JSON header.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly FileMapping _mapping;
    private byte* _base;          // start of the file; null once disposed
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsTensorInfo> _tensors;

    private SafetensorsFile(string path, FileMapping mapping, long dataStart, Dictionary<string, SafetensorsTensorInfo> tensors,
        IReadOnlyDictionary<string, string> metadata)
    {
        FilePath = path;
        _mapping = mapping;
        _base = mapping.Base;
        FileBytes = mapping.Length;
        _dataStart = dataStart;
        _tensors = tensors;
        Metadata = metadata;
    }

    public string FilePath { get; }

    public long FileBytes { get; }

    public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors => _tensors;

    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Maps <paramref name="path"/> read-only and validates its header.</summary>
    /// <exception cref="ModelFormatException">Truncated file, bad header length, invalid JSON, unknown dtype, or offsets that
    /// do not fit the data region, overlap, or disagree with dtype × shape.</exception>
    public static SafetensorsFile Open(string path)
    {
        FileMapping mapping = FileMapping.Open(path, 8, "fewer than the 8-byte header length");
        try
        {
            byte* basePtr = mapping.Base;
            long fileBytes = mapping.Length;
            ulong headerBytes = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(basePtr, 8));
            if (headerBytes > (ulong)(fileBytes - 8))
            {
                throw new ModelFormatException(path, null,
                    $"header length {headerBytes} runs past the end of the file ({fileBytes} bytes): truncated or not a safetensors file");
            }

            if (headerBytes > MaxHeaderBytes)
            {
                throw new ModelFormatException(path, null, $"header length {headerBytes} exceeds the format's limit of {MaxHeaderBytes} bytes");
            }

            long dataStart = 8 + (long)headerBytes;
            byte[] header = new ReadOnlySpan<byte>(basePtr + 8, (int)headerBytes).ToArray();
            var (tensors, metadata) = ParseHeader(path, header, fileBytes - dataStart);
            return new SafetensorsFile(path, mapping, dataStart, tensors, metadata);
        }
        catch
        {
            mapping.Dispose();
            throw;
        }
    }

    private static (Dictionary<string, SafetensorsTensorInfo>, IReadOnlyDictionary<string, string>) ParseHeader(
        string path, byte[] header, long dataBytes)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException(path, null, $"header is not valid JSON: {ex.Message}", ex);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException(path, null, $"header must be a JSON object, found {doc.RootElement.ValueKind}");
            }

            var tensors = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    if (entry.Value.ValueKind != JsonValueKind.Object)
                    {
                        throw new ModelFormatException(path, "__metadata__", "must be an object of strings");
                    }

                    foreach (JsonProperty m in entry.Value.EnumerateObject())
                    {
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    }

                    continue;
                }

                if (tensors.ContainsKey(entry.Name))
                {
                    throw new ModelFormatException(path, entry.Name, "tensor appears twice in the header");
                }

                tensors[entry.Name] = ParseEntry(path, entry.Name, entry.Value, dataBytes);
            }

            CheckCoverage(path, tensors.Values, dataBytes);
            return (tensors, metadata);
        }
    }

    /// <summary>
    /// The reference implementation's rule: sorted by offsets, the tensors' byte ranges tile the data region exactly,
    /// from 0 to its end, with no hole, no overlap and no byte left over. A header length that is off by a padding
    /// byte still parses as JSON but shifts every tensor; this rule is what catches it.
    /// </summary>
    private static void CheckCoverage(string path, IEnumerable<SafetensorsTensorInfo> tensors, long dataBytes)
    {
        long expectedBegin = 0;
        SafetensorsTensorInfo? previous = null;
        foreach (SafetensorsTensorInfo t in tensors.OrderBy(t => t.DataBegin).ThenBy(t => t.DataEnd))
        {
            if (t.DataBegin != expectedBegin)
            {
                string where = previous is null
                    ? "the first tensor must start at 0"
                    : $"'{previous.Name}' ends at {previous.DataEnd}";
                string what = t.DataBegin < expectedBegin ? "overlap" : "leave a hole of " + (t.DataBegin - expectedBegin) + " bytes";
                throw new ModelFormatException(path, t.Name,
                    $"data_offsets [{t.DataBegin}, {t.DataEnd}] {what}: {where}; the tensors must cover the data region exactly");
            }

            expectedBegin = t.DataEnd;
            previous = t;
        }

        if (expectedBegin != dataBytes)
        {
            string last = previous is null ? "the header names no tensor" : $"the last tensor '{previous.Name}' ends at {expectedBegin}";
            throw new ModelFormatException(path, previous?.Name,
                $"{last} but the data region holds {dataBytes} bytes: {dataBytes - expectedBegin} bytes are left over " +
                "(a wrong header length, or a corrupt file); the tensors must cover the data region exactly");
        }
    }

    private static SafetensorsTensorInfo ParseEntry(string path, string name, JsonElement e, long dataBytes)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(path, name, $"header entry must be an object, found {e.ValueKind}");
        }

        if (!e.TryGetProperty("dtype", out JsonElement dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw new ModelFormatException(path, name, "header entry has no string 'dtype'");
        }

        string dtypeText = dtypeElement.GetString()!;
        DType dtype = dtypeText switch
        {
            "BF16" => DType.BF16,
            "F16" => DType.F16,
            "F32" => DType.F32,
            "U32" => DType.U32,    // the packed codes of MLX quantized matrices
            _ => throw new ModelFormatException(path, name, $"dtype '{dtypeText}' is not supported; supported: BF16, F16, F32 (U32 for MLX quantized codes)"),
        };

        if (!e.TryGetProperty("shape", out JsonElement shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw new ModelFormatException(path, name, "header entry has no 'shape' array");
        }

        var shape = new List<long>();
        long elements = 1;
        foreach (JsonElement d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
            {
                throw new ModelFormatException(path, name, $"shape {shapeElement.GetRawText()} must hold non-negative integers");
            }

            shape.Add(dim);
            if (dim != 0 && elements > long.MaxValue / 8 / dim)
            {
                throw new ModelFormatException(path, name, $"shape {shapeElement.GetRawText()} is too large");
            }

            elements *= dim;
        }

        if (!e.TryGetProperty("data_offsets", out JsonElement offsets) || offsets.ValueKind != JsonValueKind.Array
            || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end))
        {
            throw new ModelFormatException(path, name, "header entry needs 'data_offsets': [begin, end] (integers)");
        }

        if (begin < 0 || end < begin)
        {
            throw new ModelFormatException(path, name, $"data_offsets [{begin}, {end}] are not an increasing byte range");
        }

        if (end > dataBytes)
        {
            throw new ModelFormatException(path, name,
                $"data_offsets [{begin}, {end}] lie outside the data region ({dataBytes} bytes): the file is truncated or the header is wrong");
        }

        long expected = elements * dtype.ByteSize();
        if (end - begin != expected)
        {
            throw new ModelFormatException(path, name,
                $"data_offsets [{begin}, {end}] span {end - begin} bytes but {dtypeText} {shapeElement.GetRawText()} needs {expected}");
        }

        return new SafetensorsTensorInfo(name, dtype, shape, begin, end);
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <exception cref="ModelFormatException">No tensor of that name.</exception>
    public SafetensorsTensorInfo GetInfo(string name)
        => _tensors.TryGetValue(name, out SafetensorsTensorInfo? info)
            ? info
            : throw new ModelFormatException(FilePath, name, "tensor not found in this file");

    /// <summary>Pointer to the first byte of a tensor's data (valid until <see cref="Dispose"/>).</summary>
    internal byte* DataPointer(SafetensorsTensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        return _base + _dataStart + info.DataBegin;
    }

    /// <summary>The raw bytes of one tensor, in place.</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        SafetensorsTensorInfo info = GetInfo(name);
        return new ReadOnlySpan<byte>(DataPointer(info), checked((int)info.ByteCount));
    }

    /// <summary>A 2-D tensor [rows, cols] used in place (no copy).</summary>
    /// <exception cref="ModelFormatException">Missing or not 2-D.</exception>
    public WeightView GetMatrix(string name)
    {
        SafetensorsTensorInfo info = GetInfo(name);
        if (info.Shape.Count != 2 || info.Shape[0] > int.MaxValue || info.Shape[1] > int.MaxValue)
        {
            throw new ModelFormatException(FilePath, name, $"expected a 2-D matrix, found shape {info.ShapeText}");
        }

        return new WeightView(DataPointer(info), info.DType, (int)info.Shape[0], (int)info.Shape[1]);
    }

    /// <summary>Any tensor converted to float32 (a copy: for small tensors such as norm weights and biases).</summary>
    public float[] ReadFloats(string name)
    {
        SafetensorsTensorInfo info = GetInfo(name);
        long count = info.ElementCount;
        if (count > Array.MaxLength)
        {
            throw new ModelFormatException(FilePath, name, $"too large to convert to float32 ({count} elements)");
        }

        if (info.DType == DType.U32)
        {
            throw new ModelFormatException(FilePath, name, "is U32 (packed quantized codes), where float values are expected");
        }

        var result = new float[count];
        byte* p = DataPointer(info);
        switch (info.DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>(p, result.Length).CopyTo(result);
                break;
            case DType.F16:
                for (int i = 0; i < result.Length; i++)
                {
                    result[i] = (float)((Half*)p)[i];
                }

                break;
            case DType.BF16:
                for (int i = 0; i < result.Length; i++)
                {
                    result[i] = BitConverter.Int32BitsToSingle(((ushort*)p)[i] << 16);
                }

                break;
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
}
