using System.Globalization;

namespace Qwen3Sharp.Loading;

/// <summary>
/// The files of one GGUF model: a single file, or every part of one that llama.cpp's <c>llama-gguf-split</c> cut into
/// <c>PREFIX-00001-of-0000N.gguf</c> … <c>PREFIX-0000N-of-0000N.gguf</c> (how large quantizations are published on the
/// Hub). The first part holds the model's metadata (config, tokenizer, template); each part holds some tensors and the
/// keys <c>split.no</c> (0-based), <c>split.count</c> and, in the first, <c>split.tensors.count</c>. As llama.cpp does,
/// the model is opened by its first part and the others are found next to it by name.
/// </summary>
public sealed class GgufParts : IDisposable
{
    private const string SplitNo = "split.no", SplitCount = "split.count", SplitTensors = "split.tensors.count";

    private readonly GgufFile[] _files;
    private readonly Dictionary<string, GgufFile> _owner;

    private GgufParts(GgufFile[] files, Dictionary<string, GgufFile> owner)
    {
        _files = files;
        _owner = owner;
    }

    /// <summary>The first part: its metadata describes the model.</summary>
    public GgufFile First => _files[0];

    public IReadOnlyList<GgufFile> Files => _files;

    public long FileBytes => _files.Sum(f => f.FileBytes);

    /// <summary>Every tensor name of every part.</summary>
    public IEnumerable<string> TensorNames => _owner.Keys;

    /// <summary>The part that holds <paramref name="name"/>, or null.</summary>
    public GgufFile? Find(string name) => _owner.GetValueOrDefault(name);

    /// <summary>The parts' mappings, for a load that reads its matrices with <c>pread</c>.</summary>
    internal MappedFiles Mappings => new(_files.Select(f => f.Mapping));

    /// <summary>Opens <paramref name="path"/> and, when it is the first part of a split model, the other parts beside it.</summary>
    /// <exception cref="ModelFormatException">A part is missing, malformed, out of order, or two parts hold the same tensor.</exception>
    public static GgufParts Open(string path)
    {
        var files = new List<GgufFile> { GgufFile.Open(path) };
        try
        {
            GgufFile first = files[0];
            long count = SplitKey(first, SplitCount) ?? 1;
            if (count > 1)
            {
                long no = SplitKey(first, SplitNo) ?? 0;
                string Part(long i) => string.Create(CultureInfo.InvariantCulture, $"-{i + 1:D5}-of-{count:D5}.gguf");
                if (no != 0)
                {
                    throw new ModelFormatException(path, SplitNo,
                        $"this is part {no + 1} of a GGUF split into {count} files: open the first part (…{Part(0)})");
                }

                if (!path.EndsWith(Part(0), StringComparison.Ordinal))
                {
                    throw new ModelFormatException(path, SplitCount,
                        $"the first part of a GGUF split into {count} files must keep llama-gguf-split's name PREFIX{Part(0)} so that the other parts can be found");
                }

                string prefix = path[..^Part(0).Length];
                for (long i = 1; i < count; i++)
                {
                    string partPath = prefix + Part(i);
                    if (!File.Exists(partPath))
                    {
                        throw new ModelFormatException(partPath, null, $"part {i + 1} of {count} of the split GGUF {Path.GetFileName(path)} is missing");
                    }

                    GgufFile part = GgufFile.Open(partPath);
                    files.Add(part);
                    if (SplitKey(part, SplitNo) != i || SplitKey(part, SplitCount) != count)
                    {
                        throw new ModelFormatException(partPath, SplitNo,
                            $"expected part {i + 1} of {count} (split.no {i}, split.count {count}), found split.no {SplitKey(part, SplitNo)?.ToString(CultureInfo.InvariantCulture) ?? "none"}, split.count {SplitKey(part, SplitCount)?.ToString(CultureInfo.InvariantCulture) ?? "none"}");
                    }
                }
            }

            var owner = new Dictionary<string, GgufFile>(StringComparer.Ordinal);
            foreach (GgufFile f in files)
            {
                foreach (string name in f.Tensors.Keys)
                {
                    if (!owner.TryAdd(name, f))
                    {
                        throw new ModelFormatException(f.FilePath, name, $"tensor is also in {Path.GetFileName(owner[name].FilePath)}");
                    }
                }
            }

            if (count > 1 && SplitKey(first, SplitTensors) is long expected && expected != owner.Count)
            {
                throw new ModelFormatException(path, SplitTensors, $"the parts hold {owner.Count} tensors, the first part says {expected}");
            }

            return new GgufParts([.. files], owner);
        }
        catch
        {
            foreach (GgufFile f in files)
            {
                f.Dispose();
            }

            throw;
        }
    }

    private static long? SplitKey(GgufFile file, string key) => file.Metadata.TryGetValue(key, out object? v)
        ? v as long? ?? throw new ModelFormatException(file.FilePath, key, $"{v} is not an integer")
        : null;

    public void Dispose()
    {
        foreach (GgufFile f in _files)
        {
            f.Dispose();
        }
    }
}
