using System.IO.MemoryMappedFiles;

namespace Qwen3Sharp.Loading;

/// <summary>
/// A model file mapped read-only, whole, for <see cref="SafetensorsFile"/> and <see cref="GgufFile"/>: the final target
/// of any links (a Hugging Face snapshot holds links into blobs/), its size the same when measured, opened and mapped.
/// </summary>
internal sealed unsafe class FileMapping : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly FileStream _stream;

    private FileMapping(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, FileStream stream, byte* basePtr, long length)
    {
        Path = path;
        _map = map;
        _view = view;
        _stream = stream;
        Base = basePtr;
        Length = length;
    }

    /// <summary>
    /// The mapped file's handle (the same open file, so the same bytes): a load reads the block-format matrices it repacks
    /// through it (<see cref="RandomAccess.Read(Microsoft.Win32.SafeHandles.SafeFileHandle, Span{byte}, long)"/>) rather
    /// than through the mapping, whose first pass reads ~2 GB/s on this project's VMs where <c>pread</c> reads ~8.
    /// </summary>
    public Microsoft.Win32.SafeHandles.SafeFileHandle Handle => _stream.SafeFileHandle;

    /// <summary>The file as the user named it (errors name it).</summary>
    public string Path { get; }

    /// <summary>The first byte of the file; null once disposed.</summary>
    public byte* Base { get; private set; }

    public long Length { get; }

    /// <param name="path">The file as the user named it (errors name it).</param>
    /// <param name="minimumBytes">Shorter files are refused as truncated, with <paramref name="tooShort"/> saying why.</param>
    /// <param name="tooShort">E.g. "fewer than the 8-byte header length".</param>
    /// <exception cref="ModelFormatException">A dangling link, a truncated file, or the file cannot be mapped.</exception>
    public static FileMapping Open(string path, long minimumBytes, string tooShort)
    {
        string target = ModelFile.Resolve(path);
        long fileBytes = new FileInfo(target).Length;
        if (fileBytes < minimumBytes)
        {
            throw new ModelFormatException(path, null, $"truncated: {fileBytes} bytes, {tooShort}");
        }

        FileStream? stream = null;
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* basePtr = null;
        try
        {
            stream = new FileStream(target, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            if (stream.Length != fileBytes)
            {
                throw new ModelFormatException(path, null,
                    $"{target} is {stream.Length} bytes when opened but {fileBytes} bytes when measured: it changed while loading");
            }

            map = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read,
                HandleInheritability.None, leaveOpen: true);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            if (view.Capacity < fileBytes)
            {
                throw new ModelFormatException(path, null, $"mapped only {view.Capacity} of the {fileBytes} bytes of {target}");
            }

            view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
            var mapping = new FileMapping(path, map, view, stream, basePtr + view.PointerOffset, fileBytes);
            map = null;
            view = null;
            stream = null;  // the mapping owns it now
            return mapping;
        }
        catch (IOException ex)
        {
            throw new ModelFormatException(path, null, $"cannot map the file: {ex.Message}", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new ModelFormatException(path, null, $"cannot map the file: {ex.Message}", ex);
        }
        finally
        {
            if (view is not null)
            {
                if (basePtr != null)
                {
                    view.SafeMemoryMappedViewHandle.ReleasePointer();
                }

                view.Dispose();
            }

            map?.Dispose();
            stream?.Dispose();
        }
    }

    /// <summary>Where <paramref name="pointer"/> (into this mapping) lies in the file, or false when it points elsewhere or the mapping is disposed.</summary>
    public bool TryLocate(byte* pointer, out long offset)
    {
        offset = pointer - Base;
        return Base != null && pointer >= Base && offset < Length;
    }

    /// <summary>
    /// <paramref name="bytes"/> bytes of the file from <paramref name="offset"/> into <paramref name="destination"/> with
    /// <c>pread</c> (<see cref="Handle"/>).
    /// </summary>
    /// <exception cref="ModelFormatException">The file ended first (it shrank after it was mapped).</exception>
    public void ReadExactly(byte* destination, long bytes, long offset)
    {
        long done = 0;
        while (done < bytes)
        {
            int got = RandomAccess.Read(Handle, new Span<byte>(destination + done, (int)Math.Min(bytes - done, 1 << 30)), offset + done);
            if (got <= 0)
            {
                throw new ModelFormatException(Path, null,
                    $"the file ended at byte {offset + done} while {bytes - done} more bytes were read from it (it changed while loading)");
            }

            done += got;
        }
    }

    public void Dispose()
    {
        if (Base != null)
        {
            Base = null;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _map.Dispose();
            _stream.Dispose();
        }
    }
}

/// <summary>
/// The mapped files a model's matrices point into (a GGUF model's parts, a checkpoint's safetensors shards): a load reads
/// the bytes it copies, repacks or quantizes from the file with <c>pread</c> (<see cref="FileMapping.Handle"/>) instead of
/// through the mapping (see <see cref="FileMapping.Handle"/> for why).
/// </summary>
internal sealed class MappedFiles(IEnumerable<FileMapping> mappings)
{
    private readonly FileMapping[] _mappings = [.. mappings];

    /// <summary>The file and byte offset of <paramref name="pointer"/>, a pointer into one of the files' mappings, or false.</summary>
    public unsafe bool TryLocate(byte* pointer, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out FileMapping? file, out long offset)
    {
        foreach (FileMapping mapping in _mappings)
        {
            if (mapping.TryLocate(pointer, out offset))
            {
                file = mapping;
                return true;
            }
        }

        file = null;
        offset = 0;
        return false;
    }
}
