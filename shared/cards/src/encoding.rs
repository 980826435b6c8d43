//! PNG encoding that reuses what the template already encoded.
//!
//! A card is its template (gradient, brand, stat labels and tracks: the same for every persona
//! of one theme and size) plus a few small regions that change (name, archetype, stat values and
//! bars, QR code). The PNG's pixels are one zlib stream; here it is cut into cells of 64 pixels
//! of one row, each compressed on its own (no match reaches into another cell) with one Huffman
//! code per template. A cell the render did not touch is copied bit for bit from the template's
//! encoding; only touched cells are filtered and compressed again. The stream's Adler-32 is
//! assembled from per-cell sums, so untouched cells are not even read.
//!
//! The format: 8-bit RGB (cards are opaque), every row with the Up filter (the difference to the
//! row above, mostly zero on a smooth gradient), one dynamic-Huffman deflate block whose only
//! matches are runs of zeros at distance 1 — the scheme of the `fdeflate` crate's fast mode
//! (RFC 1950 zlib, RFC 1951 deflate, PNG specification sections 5, 7 and 9).

use resvg::tiny_skia::{IntRect, Pixmap};

/// Pixels per cell: small enough that a name or a bar leaves most of its row untouched, large
/// enough that the per-cell bookkeeping stays small.
const CELL: usize = 64;
/// A row's cells are one bit each in a `u32`.
const MAX_WIDTH: usize = 32 * CELL;
/// Zero runs at least this long become a match (a shorter one costs more than its literals).
const MIN_RUN: usize = 8;
/// The PNG filter type every row uses.
const UP: u8 = 2;
/// Adler-32's modulus.
const BASE: u64 = 65_521;

/// Which cells of each row changed since the template (and must be compressed again).
pub struct Dirty {
    width: usize,
    rows: Vec<u32>,
}

impl Dirty {
    pub fn new(width: u32, height: u32) -> Self {
        assert!(
            width as usize <= MAX_WIDTH,
            "cards are at most {MAX_WIDTH} px wide"
        );
        Self {
            width: width as usize,
            rows: vec![0; height as usize],
        }
    }

    /// Marks the pixels of `area` (clamped to the card) as drawn on. The row below the area
    /// changes too: its Up filter reads the row above.
    pub fn mark(&mut self, area: IntRect) {
        let clamp = |v: i32, max: usize| v.clamp(0, max as i32) as usize;
        let (x0, x1) = (
            clamp(area.left(), self.width),
            clamp(area.right(), self.width),
        );
        let height = self.rows.len();
        let (y0, y1) = (clamp(area.top(), height), clamp(area.bottom(), height));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let mask = cells(x0 / CELL, (x1 - 1) / CELL + 1);
        for row in &mut self.rows[y0..(y1 + 1).min(height)] {
            *row |= mask;
        }
    }

    /// The runs of marked cells, in stream order: (row, first cell, cell after the last).
    fn runs(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        self.rows.iter().enumerate().flat_map(|(y, &row)| {
            let mut mask = row;
            std::iter::from_fn(move || {
                if mask == 0 {
                    return None;
                }
                let first = mask.trailing_zeros() as usize;
                let last = first + (mask >> first).trailing_ones() as usize;
                mask &= !cells(first, last);
                Some((y, first, last))
            })
        })
    }

    /// The marked cells as byte ranges of RGBA pixels, in order.
    fn spans(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let stride = self.width * 4;
        self.runs().map(move |(y, first, last)| {
            y * stride + first * CELL * 4..y * stride + (last * CELL).min(self.width) * 4
        })
    }

    /// Copies the marked cells of `pixmap` into `saved`.
    pub fn save(&self, pixmap: &Pixmap, saved: &mut Vec<u8>) {
        saved.clear();
        for span in self.spans() {
            saved.extend_from_slice(&pixmap.data()[span]);
        }
    }

    /// Puts back what `save` copied.
    pub fn restore(&self, saved: &[u8], pixmap: &mut Pixmap) {
        let mut from = 0;
        for span in self.spans() {
            let length = span.len();
            pixmap.data_mut()[span].copy_from_slice(&saved[from..from + length]);
            from += length;
        }
    }
}

/// The bits of cells `first..last`.
fn cells(first: usize, last: usize) -> u32 {
    (u32::MAX >> (32 - last)) & (u32::MAX << first)
}

/// A template's pixels, compressed cell by cell, and what the render needs to splice them.
pub struct Encoded {
    width: usize,
    height: usize,
    cells_per_row: usize,
    code: Code,
    /// Every cell's bits, in stream order, then one spare word.
    bits: Vec<u64>,
    /// The bit where each cell starts, then the end.
    starts: Vec<u32>,
    /// Adler-32 parts summed over the cells before each cell (modulo 65521): the byte sum, and
    /// each cell's share of the second sum (see `adler_share`).
    sum_a: Vec<u32>,
    sum_b: Vec<u32>,
}

impl Encoded {
    /// Compresses the template: a quarter of its rows to count symbols and build the Huffman
    /// code that fits this image, then every cell with that code.
    pub fn new(pixmap: &Pixmap) -> Self {
        let (width, height) = (pixmap.width() as usize, pixmap.height() as usize);
        assert!(width <= MAX_WIDTH, "cards are at most {MAX_WIDTH} px wide");
        let cells_per_row = width.div_ceil(CELL);
        let total = stream_len(width, height);
        let pixels = pixmap.data();
        let mut filter = Filter::new(width);
        let cell = |c: usize| (c * CELL, ((c + 1) * CELL).min(width));

        let mut counts = Counts([0; SYMBOLS]);
        for y in (0..height).step_by(4) {
            for c in 0..cells_per_row {
                let (x0, x1) = cell(c);
                tokenize(filter.span(pixels, y, x0, x1), &mut counts);
            }
        }
        let code = Code::new(&counts.0);

        let cells = height * cells_per_row;
        let mut writer = BitWriter::with_capacity(total / 8);
        let mut starts = Vec::with_capacity(cells + 1);
        let mut sum_a = Vec::with_capacity(cells + 1);
        let mut sum_b = Vec::with_capacity(cells + 1);
        let (mut a, mut b) = (0u64, 0u64);
        for y in 0..height {
            for c in 0..cells_per_row {
                starts.push(writer.position() as u32);
                sum_a.push(a as u32);
                sum_b.push(b as u32);
                let (x0, x1) = cell(c);
                let bytes = filter.span(pixels, y, x0, x1);
                tokenize(bytes, &mut code.writing(&mut writer));
                let (share_a, share_b) = adler_share(bytes, total - offset(width, y, x0));
                a = (a + share_a) % BASE;
                b = (b + share_b) % BASE;
            }
        }
        starts.push(writer.position() as u32);
        sum_a.push(a as u32);
        sum_b.push(b as u32);
        Self {
            width,
            height,
            cells_per_row,
            code,
            bits: writer.into_words(),
            starts,
            sum_a,
            sum_b,
        }
    }

    /// The PNG of `pixmap`, which equals the template outside the cells marked in `dirty`.
    pub fn png(&self, pixmap: &Pixmap, dirty: &Dirty) -> Vec<u8> {
        let (width, height, cells_per_row) = (self.width, self.height, self.cells_per_row);
        assert_eq!(
            (pixmap.width() as usize, pixmap.height() as usize),
            (width, height)
        );
        let total = stream_len(width, height);
        let pixels = pixmap.data();
        let mut out = Vec::with_capacity(self.bits.len() * 8 + total / 4 + 1024);
        out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut header = Vec::with_capacity(13);
        header.extend_from_slice(&(width as u32).to_be_bytes());
        header.extend_from_slice(&(height as u32).to_be_bytes());
        // 8-bit RGB, deflate, adaptive filtering (per-row filter bytes), no interlace.
        header.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &header);

        let idat = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(b"IDAT");
        // zlib header: deflate with a 32 KiB window, no dictionary, "fastest" level.
        out.extend_from_slice(&[0x78, 0x01]);
        let mut writer = BitWriter::from(out);
        writer.copy(&self.code.header, 0, self.code.header_bits);

        let mut filter = Filter::new(width);
        let (mut a, mut b) = (1u64, total as u64 % BASE);
        // Cells `clean..to` are untouched: their bits and sums come from the template.
        let splice =
            |writer: &mut BitWriter, (a, b): (&mut u64, &mut u64), clean: usize, to: usize| {
                if clean < to {
                    writer.copy(
                        &self.bits,
                        self.starts[clean] as usize,
                        self.starts[to] as usize,
                    );
                    let part =
                        |sums: &[u32]| (u64::from(sums[to]) + BASE - u64::from(sums[clean])) % BASE;
                    *a = (*a + part(&self.sum_a)) % BASE;
                    *b = (*b + part(&self.sum_b)) % BASE;
                }
            };
        let mut clean = 0;
        for (y, first, last) in dirty.runs() {
            // A run of touched cells, compressed as one span.
            splice(
                &mut writer,
                (&mut a, &mut b),
                clean,
                y * cells_per_row + first,
            );
            clean = y * cells_per_row + last;
            let x0 = first * CELL;
            let bytes = filter.span(pixels, y, x0, (last * CELL).min(width));
            tokenize(bytes, &mut self.code.writing(&mut writer));
            let (share_a, share_b) = adler_share(bytes, total - offset(width, y, x0));
            a = (a + share_a) % BASE;
            b = (b + share_b) % BASE;
        }
        splice(&mut writer, (&mut a, &mut b), clean, height * cells_per_row);
        writer.put(u64::from(self.code.codes[END]), self.code.lengths[END]);
        let mut out = writer.finish();
        out.extend_from_slice(&((b << 16 | a) as u32).to_be_bytes());
        let length = (out.len() - idat - 8) as u32;
        out[idat..idat + 4].copy_from_slice(&length.to_be_bytes());
        let crc = crc32fast::hash(&out[idat + 4..]);
        out.extend_from_slice(&crc.to_be_bytes());
        chunk(&mut out, b"IEND", &[]);
        out
    }
}

/// A PNG chunk: length, type, data, CRC of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Bytes in the filtered image: a filter byte and three bytes per pixel for every row.
fn stream_len(width: usize, height: usize) -> usize {
    height * (1 + 3 * width)
}

/// Where pixel `x` of row `y` starts in the filtered image (the row's filter byte comes first).
fn offset(width: usize, y: usize, x: usize) -> usize {
    y * (1 + 3 * width) + if x == 0 { 0 } else { 1 + 3 * x }
}

/// Turns pixels into filtered bytes, with buffers for one row.
struct Filter {
    width: usize,
    difference: Vec<u8>,
    bytes: Vec<u8>,
}

impl Filter {
    fn new(width: usize) -> Self {
        Self {
            width,
            difference: vec![0; 4 * width],
            bytes: vec![0; 1 + 3 * width],
        }
    }

    /// Pixels `x0..x1` of row `y`, filtered: the row's filter byte if the span starts the row,
    /// then each pixel's RGB minus the RGB of the pixel above (alpha is always 255).
    fn span(&mut self, pixels: &[u8], y: usize, x0: usize, x1: usize) -> &[u8] {
        let stride = self.width * 4;
        let current = &pixels[y * stride + x0 * 4..y * stride + x1 * 4];
        let difference = &mut self.difference[..current.len()];
        if y == 0 {
            difference.copy_from_slice(current);
        } else {
            let above = &pixels[(y - 1) * stride + x0 * 4..(y - 1) * stride + x1 * 4];
            for ((d, c), a) in difference.iter_mut().zip(current).zip(above) {
                *d = c.wrapping_sub(*a);
            }
        }
        let end = 1 + 3 * (x1 - x0);
        self.bytes[0] = UP;
        for (rgb, rgba) in self.bytes[1..end]
            .chunks_exact_mut(3)
            .zip(difference.chunks_exact(4))
        {
            rgb.copy_from_slice(&rgba[..3]);
        }
        &self.bytes[usize::from(x0 > 0)..end]
    }
}

/// These bytes' part of the stream's Adler-32 (RFC 1950 section 8.2), for bytes that start
/// `remaining` bytes before the end of the stream: with A = 1 + Σ dᵢ and
/// B = n + Σ (n - i)·dᵢ over stream positions i, they add Σ dⱼ to A and Σ (remaining - j)·dⱼ
/// to B over their own positions j.
fn adler_share(bytes: &[u8], remaining: usize) -> (u64, u64) {
    let (mut sum, mut weighted) = (0u64, 0u64);
    // In blocks small enough for 32-bit sums, which vectorize.
    for (block, chunk) in bytes.chunks(256).enumerate() {
        let (mut s, mut w) = (0u32, 0u32);
        for (j, &d) in chunk.iter().enumerate() {
            s += u32::from(d);
            w += j as u32 * u32::from(d);
        }
        weighted += u64::from(w) + (block * 256) as u64 * u64::from(s);
        sum += u64::from(s);
    }
    (sum % BASE, (remaining as u64 * sum - weighted) % BASE)
}

/// What the bytes are split into: literals and runs of zeros.
trait Symbols {
    fn literal(&mut self, byte: u8);

    fn literals(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.literal(byte);
        }
    }

    fn zeros(&mut self, run: usize);
}

/// Splits `bytes` into literals and zero runs, eight bytes at a time where they are all zero
/// or all not.
#[inline]
fn tokenize(bytes: &[u8], symbols: &mut impl Symbols) {
    let mut run = 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let value = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        if value == 0 {
            run += 8;
            continue;
        }
        // Little-endian: trailing zero bits are the word's first bytes.
        let first = (value.trailing_zeros() / 8) as usize;
        let end = 8 - (value.leading_zeros() / 8) as usize;
        if run + first > 0 {
            symbols.zeros(run + first);
        }
        symbols.literals(&word[first..end]);
        run = 8 - end;
    }
    for &byte in words.remainder() {
        if byte == 0 {
            run += 1;
        } else {
            if run > 0 {
                symbols.zeros(run);
                run = 0;
            }
            symbols.literal(byte);
        }
    }
    if run > 0 {
        symbols.zeros(run);
    }
}

/// How a run of zeros is written: short ones as zero literals, longer ones as one zero literal
/// and matches at distance 1 that repeat it; calls `matched` with each match length.
#[inline]
fn split_run(run: usize, mut zero: impl FnMut(), mut matched: impl FnMut(usize)) {
    if run < MIN_RUN {
        (0..run).for_each(|_| zero());
        return;
    }
    zero();
    let mut left = run - 1;
    while left >= 3 {
        let length = left.min(MAX_MATCH);
        matched(length);
        left -= length;
    }
    (0..left).for_each(|_| zero());
}

/// Symbol counts, to build a code from.
struct Counts([u32; SYMBOLS]);

impl Symbols for Counts {
    fn literal(&mut self, byte: u8) {
        self.0[usize::from(byte)] += 1;
    }

    fn zeros(&mut self, run: usize) {
        let counts = std::cell::RefCell::new(&mut self.0);
        split_run(
            run,
            || counts.borrow_mut()[0] += 1,
            |length| counts.borrow_mut()[length_symbol(length).0] += 1,
        );
    }
}

/// Writes symbols with a code.
struct Writing<'a> {
    code: &'a Code,
    writer: &'a mut BitWriter,
}

impl Symbols for Writing<'_> {
    #[inline]
    fn literal(&mut self, byte: u8) {
        let symbol = usize::from(byte);
        self.writer.put(
            u64::from(self.code.codes[symbol]),
            self.code.lengths[symbol],
        );
    }

    /// Four codes per write (at most 15 bits each).
    #[inline]
    fn literals(&mut self, bytes: &[u8]) {
        for group in bytes.chunks(4) {
            let (mut bits, mut n) = (0u64, 0u8);
            for &byte in group {
                let symbol = usize::from(byte);
                bits |= u64::from(self.code.codes[symbol]) << n;
                n += self.code.lengths[symbol];
            }
            self.writer.put(bits, n);
        }
    }

    #[inline]
    fn zeros(&mut self, run: usize) {
        let (code, writer) = (self.code, std::cell::RefCell::new(&mut *self.writer));
        split_run(
            run,
            || {
                writer
                    .borrow_mut()
                    .put(u64::from(code.codes[0]), code.lengths[0])
            },
            |length| {
                let (bits, n) = code.matches[length];
                writer.borrow_mut().put(u64::from(bits), n);
            },
        );
    }
}

/// Literal bytes, end of block, and the length symbols (RFC 1951 section 3.2.5).
const SYMBOLS: usize = 286;
const END: usize = 256;
const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const MAX_MATCH: usize = 258;

/// The length symbol for a match of `length`, its extra bits and their value.
fn length_symbol(length: usize) -> (usize, u8, u64) {
    let index = LENGTH_BASE.partition_point(|&base| usize::from(base) <= length) - 1;
    (
        257 + index,
        LENGTH_EXTRA[index],
        (length - usize::from(LENGTH_BASE[index])) as u64,
    )
}

/// One dynamic Huffman code (literals and lengths; the distance code has two one-bit codes,
/// of which only distance 1 is used) and the block header that declares it.
struct Code {
    codes: [u16; SYMBOLS],
    lengths: [u8; SYMBOLS],
    /// Every match's bits (length code, extra bits, distance code) by match length.
    matches: Vec<(u32, u8)>,
    header: Vec<u64>,
    header_bits: usize,
}

impl Code {
    /// The code for these symbol counts; every symbol gets a code, since a render may draw
    /// anything.
    fn new(counts: &[u32; SYMBOLS]) -> Self {
        let lengths = limited_lengths(counts, 15);
        let codes = canonical_codes(&lengths);
        let matches = (0..=MAX_MATCH)
            .map(|length| {
                if length < 3 {
                    return (0, 0);
                }
                let (symbol, extra_bits, extra) = length_symbol(length);
                let n = lengths[symbol];
                // The distance code for distance 1 is the single bit 0.
                let bits = u64::from(codes[symbol]) | extra << n;
                (bits as u32, n + extra_bits + 1)
            })
            .collect();

        // Block header (RFC 1951 section 3.2.7): last block, dynamic codes, 286 literal/length
        // lengths, 2 distance lengths, all 19 code-length-code lengths. The code-length code
        // gives each of the lengths 0..=15 four bits, so each length is written as itself.
        let mut header = BitWriter::with_capacity(256);
        header.put(1, 1);
        header.put(2, 2);
        header.put((SYMBOLS - 257) as u64, 5);
        header.put(1, 5);
        header.put(19 - 4, 4);
        const ORDER: [u8; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];
        for symbol in ORDER {
            header.put(if symbol < 16 { 4 } else { 0 }, 3);
        }
        for &length in lengths.iter().chain(&[1, 1]) {
            header.put(u64::from(reverse(u16::from(length), 4)), 4);
        }
        let header_bits = header.position();
        Self {
            codes,
            lengths,
            matches,
            header: header.into_words(),
            header_bits,
        }
    }

    fn writing<'a>(&'a self, writer: &'a mut BitWriter) -> Writing<'a> {
        Writing { code: self, writer }
    }
}

/// Huffman code lengths no longer than `limit`: halve the counts until the tree is shallow
/// enough (a little worse than optimal, simple, and run once per template).
fn limited_lengths(counts: &[u32; SYMBOLS], limit: u8) -> [u8; SYMBOLS] {
    let mut weights: Vec<u64> = counts.iter().map(|&c| u64::from(c).max(1)).collect();
    loop {
        let lengths = huffman_lengths(&weights);
        if lengths.iter().all(|&l| l <= limit) {
            return lengths;
        }
        for weight in &mut weights {
            *weight = (*weight / 2).max(1);
        }
    }
}

/// Optimal (unlimited) Huffman code lengths for at least two positive weights.
fn huffman_lengths(weights: &[u64]) -> [u8; SYMBOLS] {
    use std::{cmp::Reverse, collections::BinaryHeap};
    let leaves = weights.len();
    let mut parent = vec![0usize; 2 * leaves - 1];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = weights
        .iter()
        .enumerate()
        .map(|(node, &weight)| Reverse((weight, node)))
        .collect();
    let mut next = leaves;
    while let (Some(Reverse((w1, n1))), Some(Reverse((w2, n2)))) = (heap.pop(), heap.pop()) {
        parent[n1] = next;
        parent[n2] = next;
        heap.push(Reverse((w1 + w2, next)));
        next += 1;
    }
    // Internal nodes were made in order, so every parent comes after its children: walk from
    // the root down.
    let mut depth = vec![0u8; next];
    for node in (0..next - 1).rev() {
        depth[node] = depth[parent[node]] + 1;
    }
    let mut lengths = [0u8; SYMBOLS];
    lengths.copy_from_slice(&depth[..leaves]);
    lengths
}

/// Canonical codes for the lengths (RFC 1951 section 3.2.2), bit-reversed because deflate
/// packs Huffman codes starting from their most significant bit into an LSB-first stream.
fn canonical_codes(lengths: &[u8; SYMBOLS]) -> [u16; SYMBOLS] {
    let mut count = [0u16; 16];
    for &length in lengths {
        count[usize::from(length)] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    let mut codes = [0u16; SYMBOLS];
    for (symbol, &length) in lengths.iter().enumerate() {
        if length > 0 {
            codes[symbol] = reverse(next[usize::from(length)], length);
            next[usize::from(length)] += 1;
        }
    }
    codes
}

fn reverse(code: u16, length: u8) -> u16 {
    code.reverse_bits() >> (16 - u16::from(length))
}

/// Bits packed least significant first, as deflate wants them.
struct BitWriter {
    out: Vec<u8>,
    buffer: u64,
    used: u8,
}

impl From<Vec<u8>> for BitWriter {
    fn from(out: Vec<u8>) -> Self {
        Self {
            out,
            buffer: 0,
            used: 0,
        }
    }
}

impl BitWriter {
    fn with_capacity(bytes: usize) -> Self {
        Self::from(Vec::with_capacity(bytes))
    }

    /// Bits written so far (counting from where this writer started).
    fn position(&self) -> usize {
        self.out.len() * 8 + usize::from(self.used)
    }

    /// Appends the low `n` bits of `bits` (`n` ≤ 64; the bits above `n` are zero).
    #[inline]
    fn put(&mut self, bits: u64, n: u8) {
        self.buffer |= bits << self.used;
        let total = self.used + n;
        if total >= 64 {
            self.out.extend_from_slice(&self.buffer.to_le_bytes());
            self.buffer = bits.checked_shr(u32::from(64 - self.used)).unwrap_or(0);
            self.used = total - 64;
        } else {
            self.used = total;
        }
    }

    /// Appends bits `from..to` of `words` (which has a spare word after the last bit).
    fn copy(&mut self, words: &[u64], from: usize, to: usize) {
        let word = |at: usize| {
            let (index, shift) = (at / 64, at % 64);
            if shift == 0 {
                words[index]
            } else {
                words[index] >> shift | words[index + 1] << (64 - shift)
            }
        };
        let mut at = from;
        while to - at >= 64 {
            self.put(word(at), 64);
            at += 64;
        }
        if to > at {
            let n = to - at;
            self.put(word(at) & ((1u64 << n) - 1), n as u8);
        }
    }

    /// The bytes, the last one padded with zero bits.
    fn finish(mut self) -> Vec<u8> {
        let bytes = usize::from(self.used).div_ceil(8);
        self.out
            .extend_from_slice(&self.buffer.to_le_bytes()[..bytes]);
        self.out
    }

    /// The bits as words, plus a spare zero word for `copy`.
    fn into_words(self) -> Vec<u64> {
        let bytes = self.finish();
        let mut words: Vec<u64> = bytes
            .chunks(8)
            .map(|chunk| {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                u64::from_le_bytes(word)
            })
            .collect();
        words.push(0);
        words
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes, checking the zlib stream's Adler-32 too (which the png crate skips by default).
    pub(crate) fn decode(png_bytes: &[u8]) -> Vec<u8> {
        let mut options = png::DecodeOptions::default();
        options.set_ignore_adler32(false);
        let decoder = png::Decoder::new_with_options(std::io::Cursor::new(png_bytes), options);
        let mut reader = decoder.read_info().unwrap();
        let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buffer).unwrap();
        buffer.truncate(info.buffer_size());
        buffer
    }

    fn rgb(pixmap: &Pixmap) -> Vec<u8> {
        pixmap
            .data()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect()
    }

    /// A smooth gradient with a little noise: long zero runs and scattered literals.
    fn image(width: u32, height: u32, seed: u32) -> Pixmap {
        let mut pixmap = Pixmap::new(width, height).unwrap();
        let mut state = seed;
        for (i, pixel) in pixmap.data_mut().chunks_exact_mut(4).enumerate() {
            let (x, y) = (i as u32 % width, i as u32 / width);
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let noise = if (state >> 16).is_multiple_of(29) {
                (state >> 8) as u8
            } else {
                0
            };
            pixel.copy_from_slice(&[
                (x / 3) as u8,
                (y / 2) as u8 ^ noise,
                ((x + y) / 5) as u8,
                255,
            ]);
        }
        pixmap
    }

    #[test]
    fn the_template_alone_decodes_to_itself() {
        let template = image(200, 90, 1);
        let encoded = Encoded::new(&template);
        let png = encoded.png(&template, &Dirty::new(200, 90));
        assert_eq!(decode(&png), rgb(&template));
    }

    #[test]
    fn changed_regions_are_encoded_again_and_the_rest_is_spliced_in() {
        let (width, height) = (300, 120);
        let template = image(width, height, 1);
        let encoded = Encoded::new(&template);
        let mut card = template.clone();
        let mut dirty = Dirty::new(width, height);
        let noise = image(width, height, 7);
        for (x0, y0, x1, y1) in [
            (5, 0, 70, 3),
            (130, 40, 131, 41),
            (250, 100, 300, 120),
            (0, 60, 300, 61),
        ] {
            for y in y0..y1 {
                for x in x0..x1 {
                    let i = (y * width as usize + x) * 4;
                    card.data_mut()[i..i + 3].copy_from_slice(&noise.data()[i..i + 3]);
                }
            }
            dirty.mark(IntRect::from_ltrb(x0 as i32, y0 as i32, x1 as i32, y1 as i32).unwrap());
        }
        assert_eq!(decode(&encoded.png(&card, &dirty)), rgb(&card));
    }

    #[test]
    fn the_adler_checksum_is_right_and_a_wrong_one_is_noticed() {
        let template = image(64, 8, 1);
        let png = Encoded::new(&template).png(&template, &Dirty::new(64, 8));
        for flip in [0, 1] {
            let mut png = png.clone();
            // The Adler-32 ends IDAT's data, before its CRC and the 12-byte IEND chunk.
            let idat_crc = png.len() - 12 - 4;
            png[idat_crc - 4] ^= flip;
            let length = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
            let crc = crc32fast::hash(&png[idat_crc - length - 4..idat_crc]);
            png[idat_crc..idat_crc + 4].copy_from_slice(&crc.to_be_bytes());
            let mut options = png::DecodeOptions::default();
            options.set_ignore_adler32(false);
            let mut reader = png::Decoder::new_with_options(std::io::Cursor::new(&png), options)
                .read_info()
                .unwrap();
            let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
            assert_eq!(reader.next_frame(&mut buffer).is_ok(), flip == 0);
        }
    }

    #[test]
    fn everything_marked_is_a_full_fresh_encoding() {
        let template = image(130, 40, 3);
        let card = image(130, 40, 4);
        let mut dirty = Dirty::new(130, 40);
        dirty.mark(IntRect::from_ltrb(-10, -10, 500, 500).unwrap());
        assert_eq!(
            decode(&Encoded::new(&template).png(&card, &dirty)),
            rgb(&card)
        );
    }

    #[test]
    fn long_zero_runs_and_every_byte_value_round_trip() {
        let mut pixmap = Pixmap::new(1200, 3).unwrap();
        for (i, pixel) in pixmap.data_mut().chunks_exact_mut(4).enumerate() {
            let v = if i < 1200 { 0 } else { (i % 256) as u8 };
            pixel.copy_from_slice(&[v, v.wrapping_mul(7), 0, 255]);
        }
        let png = Encoded::new(&pixmap).png(&pixmap, &Dirty::new(1200, 3));
        assert_eq!(decode(&png), rgb(&pixmap));
    }
}
