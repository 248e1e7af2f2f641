// What the stand-in driver reads from a CUBIN (part of libcuda.so.1): the image's size, and each
// kernel's register count and static shared memory, as the real driver does to decide whether a
// launch fits the device.
//
//   .symtab                   the kernel's symbol index (by name)
//   .nv.info                  attributes: EIATTR_REGCOUNT (0x2f) = (symbol index, registers per thread)
//   .nv.shared.NAME (NOBITS)  the kernel's static __shared__ bytes
//
// An attribute is (format, attribute) bytes then a value: format 4 (EIFMT_SVAL) a 16-bit size and
// that many bytes, 3 (EIFMT_HVAL) 16 bits, 2 (EIFMT_BVAL) 8 bits, 1 (EIFMT_NVAL) nothing.
#define _GNU_SOURCE
#include "standin.h"

#include <stdio.h>
#include <string.h>

typedef struct { uint32_t name, type; uint64_t flags, addr, offset, size; uint32_t link, info; uint64_t align, entsize; } shdr;

static shdr section(const unsigned char* img, int i) {
    uint64_t shoff;
    uint16_t shentsize;
    memcpy(&shoff, img + 0x28, 8);
    memcpy(&shentsize, img + 0x3A, 2);
    shdr h;
    memcpy(&h, img + shoff + (size_t) i * shentsize, sizeof h);
    return h;
}

static uint16_t section_count(const unsigned char* img) {
    uint16_t shnum;
    memcpy(&shnum, img + 0x3C, 2);
    return shnum;
}

size_t cubin_size(const unsigned char* img) {
    uint64_t shoff;
    uint16_t shentsize, shnum = section_count(img);
    memcpy(&shoff, img + 0x28, 8);
    memcpy(&shentsize, img + 0x3A, 2);
    size_t end = shoff + (size_t) shentsize * shnum;
    for (int i = 0; i < shnum; i++) {
        shdr s = section(img, i);
        if (s.type != 8 /* NOBITS */ && s.offset + s.size > end) end = s.offset + s.size;
    }
    return end;
}

static const char* section_name(const unsigned char* img, int i) {
    uint16_t shstrndx;
    memcpy(&shstrndx, img + 0x3E, 2);
    return (const char*) img + section(img, shstrndx).offset + section(img, i).name;
}

int cubin_kernel_info(const unsigned char* img, size_t n, const char* kernel, int* registers, int* static_shared) {
    *registers = 0;
    *static_shared = 0;
    if (n < 0x40 || memcmp(img, "\177ELF", 4) != 0 || img[4] != 2) return 0;
    uint16_t shnum = section_count(img);
    char shared_name[200];
    snprintf(shared_name, sizeof shared_name, ".nv.shared.%s", kernel);
    long symbol = -1;
    for (int i = 0; i < shnum; i++) {
        shdr s = section(img, i);
        if (s.type == 2 /* SYMTAB */ && s.entsize == 24) {
            const char* strings = (const char*) img + section(img, (int) s.link).offset;
            for (uint64_t k = 0; k < s.size / 24; k++) {
                uint32_t name;
                memcpy(&name, img + s.offset + k * 24, 4);
                if (strcmp(strings + name, kernel) == 0 && (img[s.offset + k * 24 + 4] & 0xf) == 2 /* FUNC */) symbol = (long) k;
            }
        } else if (strcmp(section_name(img, i), shared_name) == 0) {
            *static_shared = (int) s.size;
        }
    }
    if (symbol < 0) return 0;
    for (int i = 0; i < shnum; i++) {
        if (strcmp(section_name(img, i), ".nv.info") != 0) continue;
        shdr s = section(img, i);
        const unsigned char* p = img + s.offset, *end = p + s.size;
        while (p + 2 <= end) {
            unsigned fmt = p[0], attr = p[1];
            if (fmt == 4) {
                uint16_t size;
                memcpy(&size, p + 2, 2);
                if (attr == 0x2f && size >= 8 && p + 4 + 8 <= end) {
                    uint32_t sym, regs;
                    memcpy(&sym, p + 4, 4);
                    memcpy(&regs, p + 8, 4);
                    if ((long) sym == symbol) *registers = (int) regs;
                }
                p += 4 + size;
            } else if (fmt == 3) {
                p += 4;
            } else if (fmt == 2) {
                p += 3;
            } else if (fmt == 1) {
                p += 2;
            } else {
                break;
            }
        }
    }
    return 1;
}
