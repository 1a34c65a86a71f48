/* RSDP -> XSDT (or RSDT) -> MADT / FADT -> DSDT, and a walk of the DSDT's AML that is
 * just deep enough to list each device's _HID and the resources in its _CRS buffer. */
#include "guest.h"

static int checksum_ok(const u8 *table, u32 length)
{
    u8 sum = 0;
    for (u32 i = 0; i < length; i++)
        sum += table[i];
    return sum == 0;
}

static int is_rsdp(const u8 *p)
{
    return !memcmp(p, "RSD PTR ", 8) && checksum_ok(p, 20);
}

u64 find_rsdp(u64 hint)
{
    if (hint && is_rsdp((const u8 *)hint))
        return hint;
    for (u64 address = 0xE0000; address < 0x100000; address += 16)  /* the BIOS area scan */
        if (is_rsdp((const u8 *)address))
            return address;
    return 0;
}

static void put_signature(const u8 *table)
{
    for (int i = 0; i < 4; i++)
        putc((char)table[i]);
}

static void report_madt(const u8 *madt)
{
    u32 length = rd32(madt + 4), cpus = 0;
    puts("lapic_address=");
    put_hex(rd32(madt + 36));
    putc('\n');
    for (u32 offset = 44; offset + 2 <= length && madt[offset + 1];) {
        const u8 *entry = madt + offset;
        if (entry[0] == 0 && (rd32(entry + 4) & 1)) {
            puts("cpu uid=");
            put_dec(entry[2]);
            puts(" apic_id=");
            put_dec(entry[3]);
            putc('\n');
            cpus++;
        } else if (entry[0] == 9 && (rd32(entry + 8) & 1)) {
            puts("cpu uid=");
            put_dec(rd32(entry + 12));
            puts(" apic_id=");
            put_dec(rd32(entry + 4));
            putc('\n');
            cpus++;
        } else if (entry[0] == 1) {
            puts("ioapic id=");
            put_dec(entry[2]);
            puts(" address=");
            put_hex(rd32(entry + 4));
            puts(" gsi_base=");
            put_dec(rd32(entry + 8));
            putc('\n');
        } else if (entry[0] == 2) {
            puts("override irq=");
            put_dec(entry[3]);
            puts(" gsi=");
            put_dec(rd32(entry + 4));
            putc('\n');
        }
        offset += entry[1];
    }
    puts("cpus=");
    put_dec(cpus);
    putc('\n');
}

/* PkgLength: returns the encoded length value and how many bytes encoded it. */
static u32 pkg_length(const u8 *p, u32 *encoded_bytes)
{
    u32 extra = p[0] >> 6, value;
    if (!extra) {
        *encoded_bytes = 1;
        return p[0] & 0x3F;
    }
    value = p[0] & 0x0F;
    for (u32 i = 0; i < extra; i++)
        value |= (u32)p[1 + i] << (4 + 8 * i);
    *encoded_bytes = 1 + extra;
    return value;
}

static void put_eisa_id(u32 value)
{
    u32 id = (value >> 24) | ((value >> 8) & 0xFF00) | ((value << 8) & 0xFF0000) | (value << 24);
    putc((char)(((id >> 26) & 0x1F) + 0x40));
    putc((char)(((id >> 21) & 0x1F) + 0x40));
    putc((char)(((id >> 16) & 0x1F) + 0x40));
    for (int shift = 12; shift >= 0; shift -= 4)
        putc("0123456789ABCDEF"[(id >> shift) & 0xF]);
}

/* Resources of a ResourceTemplate buffer: `Name(_CRS, Buffer(...){...})`. */
static void report_resources(const u8 *buffer, const u8 *end)
{
    u32 encoded, length = pkg_length(buffer + 1, &encoded);
    const u8 *p = buffer + 1 + encoded, *stop = buffer + 1 + length;
    if (stop > end)
        return;
    if (*p == 0x0A) p += 2;        /* BufferSize as ByteConst */
    else if (*p == 0x0B) p += 3;   /* WordConst */
    else if (*p == 0x0C) p += 5;   /* DWordConst */
    else p += 1;                   /* Zero/One */
    while (p < stop) {
        u8 tag = *p;
        if (tag & 0x80) {          /* large descriptor */
            u16 size = rd16(p + 1);
            if (tag == 0x86) {
                puts(" base=");
                put_hex(rd32(p + 4));
                puts(" size=");
                put_hex(rd32(p + 8));
            } else if (tag == 0x89) {
                puts(" gsi=");
                put_dec(rd32(p + 5));
            }
            p += 3 + size;
        } else {                   /* small descriptor */
            u8 kind = (tag >> 3) & 0x0F, size = tag & 7;
            if (kind == 0x0F)      /* end tag */
                break;
            if (kind == 0x08) {    /* IO */
                puts(" io=");
                put_hex(rd16(p + 2));
            } else if (kind == 0x04) {  /* IRQ */
                u16 mask = rd16(p + 1);
                for (int irq = 0; irq < 16; irq++)
                    if (mask & (1 << irq)) {
                        puts(" irq=");
                        put_dec((u64)irq);
                    }
            }
            p += 1 + size;
        }
    }
}

static void report_dsdt(const u8 *dsdt)
{
    u32 length = rd32(dsdt + 4), devices = 0;
    const u8 *end = dsdt + length;
    for (const u8 *p = dsdt + 36; p + 6 < end; p++) {
        if (p[0] != 0x08 || memcmp(p + 1, "_HID", 4))
            continue;
        const u8 *value = p + 5;
        puts("device ");
        if (*value == 0x0D) {
            put_str_n((const char *)value + 1, (size_t)(end - value - 1));
        } else if (*value == 0x0C) {
            put_eisa_id(rd32(value + 1));
        } else {
            puts("?");
        }
        /* the device's _CRS follows its _HID, before the next device's _HID */
        for (const u8 *q = value; q + 6 < end; q++) {
            if (q[0] == 0x08 && !memcmp(q + 1, "_HID", 4))
                break;
            if (q[0] == 0x08 && !memcmp(q + 1, "_CRS", 4) && q[5] == 0x11) {
                report_resources(q + 5, end);
                break;
            }
        }
        putc('\n');
        devices++;
    }
    puts("acpi_devices=");
    put_dec(devices);
    putc('\n');
}

void report_acpi(u64 hint)
{
    u64 rsdp = find_rsdp(hint);
    const u8 *r = (const u8 *)rsdp, *root, *dsdt = 0;
    int wide;
    u32 count;
    if (!rsdp) {
        puts("rsdp=none\n");
        return;
    }
    wide = r[15] >= 2 && rd64(r + 24);
    root = wide ? (const u8 *)rd64(r + 24) : (const u8 *)(u64)rd32(r + 16);
    puts("rsdp=");
    put_hex(rsdp);
    puts(" revision=");
    put_dec(r[15]);
    puts(wide && checksum_ok(r, 36) ? " checksum=ok\n" : wide ? " checksum=bad\n" : "\n");
    puts("acpi root=");
    put_signature(root);
    puts(checksum_ok(root, rd32(root + 4)) ? " checksum=ok\n" : " checksum=bad\n");
    count = (rd32(root + 4) - 36) / (wide ? 8 : 4);
    for (u32 i = 0; i < count; i++) {
        const u8 *table = wide ? (const u8 *)rd64(root + 36 + 8 * i) : (const u8 *)(u64)rd32(root + 36 + 4 * i);
        puts("acpi table=");
        put_signature(table);
        puts(checksum_ok(table, rd32(table + 4)) ? " checksum=ok\n" : " checksum=bad\n");
        if (!memcmp(table, "APIC", 4))
            report_madt(table);
        if (!memcmp(table, "FACP", 4)) {
            u32 flags = rd32(table + 112);
            dsdt = rd32(table + 4) >= 148 && rd64(table + 140) ? (const u8 *)rd64(table + 140) : (const u8 *)(u64)rd32(table + 40);
            puts("fadt hw_reduced=");
            put_dec((flags >> 20) & 1);
            putc('\n');
        }
    }
    if (dsdt) {
        puts("acpi table=DSDT");
        puts(checksum_ok(dsdt, rd32(dsdt + 4)) ? " checksum=ok\n" : " checksum=bad\n");
        report_dsdt(dsdt);
    }
}
