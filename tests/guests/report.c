/* The reporting guest: prints what the loader and ACPI told it, as key=value lines the
 * tests compare with what the VMM was configured with, then ends as the cmdline says:
 * finish=exit (default; exit_code=N through port 0xF4), finish=reset (i8042) or finish=halt
 * (sleeps until the VMM is stopped), after hold=N extra VM exits (default 0). */
#include "guest.h"

static const char *memory_type(u32 type)
{
    switch (type) {
    case 1: return "ram";
    case 2: return "reserved";
    case 3: return "acpi";
    case 4: return "nvs";
    case 5: return "unusable";
    default: return "other";
    }
}

void guest_main(struct boot_info *info)
{
    u64 ram = 0;
    puts("guest: report guest started\n");
    puts(info->protocol == PROTOCOL_PVH ? "protocol=pvh\n" : "protocol=linux64\n");
    puts("boot_info=");
    put_hex(info->info_address);
    putc('\n');
    if (info->protocol == PROTOCOL_LINUX64) {
        puts("setup version=");
        put_hex(info->setup_version);
        puts(" loadflags=");
        put_hex(info->loadflags);
        puts(" type_of_loader=");
        put_hex(info->type_of_loader);
        putc('\n');
    }
    puts("cmdline=");
    puts(info->cmdline);
    putc('\n');
    for (u32 i = 0; i < info->memory_ranges; i++) {
        struct memory_range *range = &info->memory[i];
        puts("e820: ");
        put_hex(range->address);
        putc('-');
        put_hex(range->address + range->size);
        putc(' ');
        puts(memory_type(range->type));
        putc('\n');
        if (range->type == 1)
            ram += range->size;
    }
    puts("ram_total=");
    put_dec(ram);
    putc('\n');
    if (info->initrd_size) {
        puts("initrd address=");
        put_hex(info->initrd_address);
        puts(" size=");
        put_dec(info->initrd_size);
        puts(" crc32=");
        put_hex(crc32((const u8 *)info->initrd_address, info->initrd_size));
        putc('\n');
    } else {
        puts("initrd=none\n");
    }
    report_acpi(info->rsdp);
    boot_timer_signal();
    puts("boot-timer: signalled\n");
    /* hold=N: N more VM exits (writes to the unused POST port) before finishing, so that the
     * host can look at the running VMM: its threads, filters, namespaces. */
    for (u64 i = cmdline_number(info->cmdline, "hold", 0); i > 0; i--)
        outb(0x80, 0);
    puts("guest: done\n");
    if (cmdline_is(info->cmdline, "finish", "reset"))
        i8042_reset();
    if (cmdline_is(info->cmdline, "finish", "halt"))
        for (;;)  /* interrupts stay off: the vCPU sleeps in the kernel until the VMM stops it */
            __asm__ volatile("cli; hlt");
    exit_with((u8)cmdline_number(info->cmdline, "exit_code", 0));
}
