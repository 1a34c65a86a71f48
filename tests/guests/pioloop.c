/* Exit-rate benchmark guest: count=N one-byte writes to a port nothing handles (0x80, the
 * POST-code port), then the boot-timer byte and exit. Each write is one PIO VM exit. */
#include "guest.h"

#define NULL_PORT 0x80

void guest_main(struct boot_info *info)
{
    u64 count = cmdline_number(info->cmdline, "count", 100000);
    for (u64 i = 0; i < count; i++)
        outb(NULL_PORT, (u8)i);
    puts("pio: writes=");
    put_dec(count);
    putc('\n');
    puts("guest: done\n");
    exit_with(0);
}
