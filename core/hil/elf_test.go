package hil

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// fakeELF returns a minimal ELF64 object with a .modinfo section holding
// modinfo, and a PT_INTERP program header when interp is true.
func fakeELF(modinfo string, interp bool) []byte {
	shstrtab := "\x00.modinfo\x00.shstrtab\x00"
	const ehdrSize, phdrSize, shdrSize = 64, 56, 64
	nprog := 0
	if interp {
		nprog = 1
	}
	infoOff := uint64(ehdrSize + nprog*phdrSize)
	strOff := infoOff + uint64(len(modinfo))
	shOff := strOff + uint64(len(shstrtab))

	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Ehsize: ehdrSize, Phentsize: phdrSize, Phnum: uint16(nprog), Shentsize: shdrSize,
		Shoff: shOff, Shnum: 3, Shstrndx: 2,
	}
	if interp {
		hdr.Phoff = ehdrSize
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	must(binary.Write(&b, binary.LittleEndian, hdr))
	if interp {
		must(binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_INTERP), Off: infoOff, Filesz: 1, Memsz: 1}))
	}
	b.WriteString(modinfo)
	b.WriteString(shstrtab)
	for _, s := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Off: infoOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstrtab)), Addralign: 1},
	} {
		must(binary.Write(&b, binary.LittleEndian, s))
	}
	return b.Bytes()
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
