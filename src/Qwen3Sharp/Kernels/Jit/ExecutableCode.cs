using System.Runtime.InteropServices;

namespace Qwen3Sharp.Kernels.Jit;

/// <summary>
/// Machine code in its own anonymous mapping: mapped read-write, the bytes copied in, then flipped to
/// read-execute with <c>mprotect</c> before any of it runs (never writable and executable at once). Unmapped on
/// <see cref="Dispose"/>. Linux only (the <c>mmap</c> constants below are Linux x86-64's).
/// </summary>
internal sealed unsafe partial class ExecutableCode : IDisposable
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    private const int MapPrivate = 0x02, MapAnonymous = 0x20;

    private byte* _address;
    private readonly nuint _length;

    public ExecutableCode(ReadOnlySpan<byte> code)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            throw new PlatformNotSupportedException("Generated machine code is supported on Linux x86-64 only.");
        }

        if (code.IsEmpty)
        {
            throw new ArgumentException("no code to map", nameof(code));
        }

        _length = (nuint)((code.Length + 4095) & ~4095);
        void* p = Mmap(null, _length, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (p == (void*)-1)
        {
            throw new InvalidOperationException($"mmap of {_length} bytes for generated code failed (errno {Marshal.GetLastPInvokeError()}).");
        }

        _address = (byte*)p;
        code.CopyTo(new Span<byte>(_address, code.Length));
        if (Mprotect(_address, _length, ProtRead | ProtExec) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _ = Munmap(_address, _length);
            _address = null;
            throw new InvalidOperationException($"mprotect to read+execute failed (errno {errno}); the system may forbid executable anonymous memory.");
        }
    }

    /// <summary>Start of the code; valid until <see cref="Dispose"/>.</summary>
    public byte* Address
    {
        get
        {
            ObjectDisposedException.ThrowIf(_address == null, this);
            return _address;
        }
    }

    public void Dispose()
    {
        if (_address != null)
        {
            _ = Munmap(_address, _length);
            _address = null;
        }
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int Mprotect(void* address, nuint length, int protection);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(void* address, nuint length);
}
