//! A seccomp filter that makes `io_uring_setup` fail with `EPERM`, as Docker's default profile
//! does, for testing the epoll fallback. Neither `nix` nor another well-kept crate we use
//! installs a seccomp filter, so the `prctl(PR_SET_SECCOMP)` call is hand-written.

#![allow(unsafe_code)]

use super::errno;
use crate::io::Errno;

/// `AUDIT_ARCH_*` of the architecture this is built for, as seen in `seccomp_data.arch`.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: Option<u32> = Some(0xc000_003e);
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: Option<u32> = Some(0xc000_00b7);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: Option<u32> = None;

/// Offset of `nr` in the kernel's `struct seccomp_data`.
const SECCOMP_DATA_NR: u32 = 0;
/// Offset of `arch` in the kernel's `struct seccomp_data`.
const SECCOMP_DATA_ARCH: u32 = 4;

/// Makes `io_uring_setup` fail with `EPERM` for the calling thread and every process it starts
/// from now on, as Docker's default seccomp profile does; every other system call is allowed.
/// It cannot be undone. Meant for testing the epoll fallback (and for users who want to see
/// it); it sets `PR_SET_NO_NEW_PRIVS` first, which seccomp requires without `CAP_SYS_ADMIN`.
///
/// # Errors
/// `ENOSYS` on an architecture this does not know the audit number of; otherwise the `prctl`
/// error (e.g. `EINVAL` from a kernel without seccomp filters).
pub fn deny_io_uring_setup() -> Result<(), Errno> {
    let Some(arch) = AUDIT_ARCH else {
        return Err(Errno(libc::ENOSYS));
    };
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let mut filter = [
        stmt(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            SECCOMP_DATA_ARCH,
        ),
        // Another ABI (e.g. 32-bit calls): allow, its numbers differ.
        jump(arch, 0, 3),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, SECCOMP_DATA_NR),
        jump(libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA),
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    nix::sys::prctl::set_no_new_privs().map_err(errno)?;
    // SAFETY: `prog` points at `filter`, a valid BPF program of `len` instructions that lives
    // until the call returns; the kernel copies it.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(crate::io::sys::errno_of(&std::io::Error::last_os_error()));
    }
    Ok(())
}
