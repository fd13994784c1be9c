/*
 * kap_shim_seccomp.c -- the capsule command's seccomp filter, written by
 * hand (no libseccomp: kap-shim is libc only and static).
 *
 * Modelled on Docker's default profile, as a deny-list with EPERM: kernel
 * keyrings, bpf, perf events, userfaultfd, kexec, kernel modules, io_uring
 * (its requests bypass this filter), swap, reboot, accounting; mounting
 * and namespace changes (the capsule is built before the filter goes on:
 * mount, umount2, pivot_root, the new mount API, unshare, setns, and clone
 * with a CLONE_NEW* flag; clone3 answers ENOSYS so that libc falls back to
 * clone, whose flags can be checked); socket(AF_VSOCK) (vsock is not
 * isolated by network namespaces); ioctl TIOCSTI and TIOCLINUX (typing
 * into a terminal).  Any other architecture than the one kap-shim was
 * built for, and x32 calls on x86_64, are refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sched.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "kap_shim_capsule.h"

#if defined(__x86_64__)
#define CAP_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define CAP_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

#define NSFLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER \
                 | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)

/* system calls refused outright (those the architecture has) */
static const long denied[] = {
#ifdef SYS_keyctl
    SYS_keyctl, SYS_add_key, SYS_request_key,
#endif
    SYS_bpf, SYS_perf_event_open, SYS_userfaultfd,
    SYS_kexec_load,
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
    SYS_init_module, SYS_finit_module, SYS_delete_module,
    SYS_mount, SYS_umount2, SYS_pivot_root, SYS_unshare, SYS_setns,
    SYS_open_tree, SYS_move_mount, SYS_fsopen, SYS_fsconfig, SYS_fsmount,
    SYS_fspick, SYS_mount_setattr,
    SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
    SYS_swapon, SYS_swapoff, SYS_reboot, SYS_acct, SYS_quotactl,
    SYS_lookup_dcookie, SYS_name_to_handle_at, SYS_open_by_handle_at,
#ifdef SYS_iopl
    SYS_iopl, SYS_ioperm,
#endif
#ifdef SYS_umount
    SYS_umount,
#endif
};

#define LD_NR    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LD_ARG_LO(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, \
                              offsetof(struct seccomp_data, args[i]))
#define RET(v)   BPF_STMT(BPF_RET | BPF_K, (v))
#define EPERM_   (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#define ENOSYS_  (SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA))

int
capsule_seccomp(void)
{
#ifndef CAP_AUDIT_ARCH
    capsule_warn("no seccomp filter for this architecture");
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -1;
#else
    struct sock_filter f[128];
    size_t n = 0;
    const size_t nd = sizeof denied / sizeof denied[0];

    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CAP_AUDIT_ARCH, 1, 0);
    f[n++] = (struct sock_filter)RET(EPERM_);
    f[n++] = (struct sock_filter)LD_NR;
#if defined(__x86_64__)
    /* x32 system calls: the same numbers with bit 30 set */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);
    f[n++] = (struct sock_filter)RET(EPERM_);
#endif
    for (size_t i = 0; i < nd; i++) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                              (unsigned)denied[i], 0, 1);
        f[n++] = (struct sock_filter)RET(EPERM_);
    }
    /* clone3: its flags are behind a pointer; libc falls back to clone */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
    f[n++] = (struct sock_filter)RET(ENOSYS_);
    /* clone(flags, ...) with a namespace flag (flags is the first argument
     * on x86_64 and aarch64) */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
    f[n++] = (struct sock_filter)LD_ARG_LO(0);
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NSFLAGS, 0, 1);
    f[n++] = (struct sock_filter)RET(EPERM_);
    f[n++] = (struct sock_filter)LD_NR;
    /* socket(AF_VSOCK, ...) */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 3);
    f[n++] = (struct sock_filter)LD_ARG_LO(0);
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_VSOCK, 0, 1);
    f[n++] = (struct sock_filter)RET(EPERM_);
    f[n++] = (struct sock_filter)LD_NR;
    /* ioctl(fd, TIOCSTI or TIOCLINUX): the kernel reads the request as an
     * unsigned int, so the low 32 bits are what counts */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 4);
    f[n++] = (struct sock_filter)LD_ARG_LO(1);
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 1, 0);
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 0, 1);
    f[n++] = (struct sock_filter)RET(EPERM_);
    f[n++] = (struct sock_filter)RET(SECCOMP_RET_ALLOW);

    if (n > sizeof f / sizeof f[0]) {
        capsule_warn("seccomp filter too long");
        return -1;
    }
    struct sock_fprog prog = { .len = (unsigned short)n, .filter = f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        capsule_warn("no_new_privs: %s", strerror(errno));
        return -1;
    }
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
        capsule_warn("seccomp: %s", strerror(errno));
        return -1;
    }
    return 0;
#endif
}
