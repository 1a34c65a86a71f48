/* Asks the VMM's test-only violation device (port 0x4F0, present with --test-devices) to
 * make a host thread call a syscall its seccomp filter forbids: violation=vcpu writes 1
 * (the vCPU thread handling the exit), violation=vmm writes 2 (the main thread). The VMM
 * must die on that; if the guest runs on, it says so and exits with code 3. */
#include "guest.h"

#define VIOLATION_PORT 0x4F0
#define NULL_PORT 0x80

void guest_main(struct boot_info *info)
{
    u8 request = 0;
    puts("guest: violation guest started\n");
    if (cmdline_is(info->cmdline, "violation", "vcpu"))
        request = 1;
    else if (cmdline_is(info->cmdline, "violation", "vmm"))
        request = 2;
    if (!request) {
        puts("violation: no violation=vcpu|vmm on the command line\n");
        exit_with(2);
    }
    puts("violation: requesting ");
    puts(request == 1 ? "vcpu\n" : "vmm\n");
    outb(VIOLATION_PORT, request);
    /* The main thread acts asynchronously: give it ~100k VM exits (about a second) of time. */
    for (u32 i = 0; i < 100000; i++)
        outb(NULL_PORT, 0);
    puts("violation: still running after the request\n");
    exit_with(3);
}
