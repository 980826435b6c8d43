// Node.js baseline for the persona card: satori -> SVG -> resvg -> PNG, QR from `qrcode`.
//
//   node render.mjs serve <square|story|link>          one render per `render` line on stdin,
//                                                     answered by `{"ms", "png_bytes"}` (warm)
//   node render.mjs cold <square|story|link> <out.png> render once, write the PNG
//
// `serve` lets the Rust bench interleave the two pipelines (A B A B) with both kept warm; the
// time is taken inside this process, around the render only, as the Rust side does.
//
// Fonts come from $FONTS_DIR (default ../../cards/fonts beside this file). Name from $NAME.
// Layout numbers follow shared/cards/src/layout.rs (frame per size, default theme).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import satori from 'satori';
import { Resvg } from '@resvg/resvg-js';
import QRCode from 'qrcode';

const here = dirname(fileURLToPath(import.meta.url));
const fontsDir = process.env.FONTS_DIR
  ? resolve(process.env.FONTS_DIR)
  : resolve(here, '../../cards/fonts');
const font = (file) => readFileSync(resolve(fontsDir, file));
// One array for every render, so satori can reuse what it parsed from it.
const FONTS = [
  { name: 'Noto Sans', data: font('NotoSans-Regular.ttf'), weight: 400, style: 'normal' },
  { name: 'Noto Sans', data: font('NotoSans-Bold.ttf'), weight: 700, style: 'normal' },
  { name: 'NanumGothic', data: font('NanumGothic_400Regular.ttf'), weight: 400, style: 'normal' },
  { name: 'NanumGothic', data: font('NanumGothic_800ExtraBold.ttf'), weight: 800, style: 'normal' },
];

const PALETTE = {
  from: '#2e1065',
  to: '#7e22ce',
  text: '#ffffff',
  muted: '#ede9fe',
  accent: '#fbcfe8',
  track: '#1e0b45',
};

const FRAMES = {
  square: {
    width: 1080, height: 1080, pad: 80, nameTop: 170, nameMax: 92, nameMin: 52, nameWidth: 920,
    archetypeSize: 40, statsTop: 470, statsWidth: 560, barGap: 96, statSize: 30,
    qrX: 740, qrY: 740, qrSize: 260,
  },
  story: {
    width: 1080, height: 1920, pad: 90, nameTop: 360, nameMax: 104, nameMin: 56, nameWidth: 900,
    archetypeSize: 46, statsTop: 760, statsWidth: 900, barGap: 130, statSize: 36,
    qrX: 370, qrY: 1390, qrSize: 340,
  },
  link: {
    width: 1200, height: 630, pad: 56, nameTop: 120, nameMax: 72, nameMin: 40, nameWidth: 800,
    archetypeSize: 32, statsTop: 300, statsWidth: 760, barGap: 70, statSize: 24,
    qrX: 920, qrY: 175, qrSize: 240,
  },
};

const CARD = {
  name: process.env.NAME || 'Mira the Bright Mind',
  archetype: 'Kamidere',
  description: 'Brilliant, confident, certain they know the way.',
  stats: [
    ['Charisma', 82],
    ['Intellect', 97],
    ['Kindness', 41],
    ['Energy', 63],
  ],
  url: 'https://remirai.app/p/0190f0c2-7d1e-7a4c-9a51-2b6c1f3e9d10',
};

const FAMILY = "'Noto Sans', 'NanumGothic'";

// A satori node without React.
const h = (type, style, children) => ({
  type,
  props: { style: { boxSizing: 'border-box', ...style }, children },
});

// Absolutely placed block at (left, top).
const at = (left, top, style, children) =>
  h('div', { position: 'absolute', left, top, display: 'flex', ...style }, children);

// QR on a white square with a 4-module quiet zone, whole-pixel modules, like layout.rs.
async function qrNode(url, x, y, size) {
  const modules = QRCode.create(url, { errorCorrectionLevel: 'M' }).modules.size;
  const total = modules + 8;
  const unit = Math.max(1, Math.floor(size / total));
  const drawn = unit * total;
  const left = Math.round(x + (size - drawn) / 2);
  const top = Math.round(y + (size - drawn) / 2);
  // The qrcode SVG includes the white background and quiet zone (margin 4).
  const svg = await QRCode.toString(url, {
    type: 'svg',
    errorCorrectionLevel: 'M',
    margin: 4,
    width: drawn,
    color: { dark: '#000000ff', light: '#ffffffff' },
  });
  const src = `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`;
  return at(left, top, {
    width: drawn, height: drawn, backgroundColor: '#ffffff', borderRadius: unit * 2,
    overflow: 'hidden',
  }, [{ type: 'img', props: { src, width: drawn, height: drawn, style: { width: drawn, height: drawn } } }]);
}

async function card(sizeName) {
  const f = FRAMES[sizeName];
  const p = PALETTE;
  // Rough name fit (layout.rs measures; this estimates): bold Noto Sans runs ~0.52 em per
  // character, 0.55 leaves headroom. Longer names wrap to two lines, then get an ellipsis.
  const nameSize = Math.round(
    Math.min(f.nameMax, Math.max(f.nameMin, f.nameWidth / (0.55 * CARD.name.length))),
  );
  const brandSize = f.statSize * 0.8;
  const barH = f.statSize * 0.7;
  const labelGap = f.statSize * 0.3;
  const rowHeight = f.statSize * 1.2 + labelGap + barH;

  // Text and stats flow in one column; the QR is placed absolutely, as in layout.rs.
  const column = h('div', {
    display: 'flex', flexDirection: 'column', width: f.width, height: f.height,
    padding: f.pad, paddingTop: f.pad - 4,
  }, [
    h('div', {
      display: 'flex', fontSize: brandSize, fontWeight: 700, color: p.muted, letterSpacing: 4,
      lineHeight: 1.2,
    }, 'RE:MIRAI'),
    h('div', {
      display: 'block', width: f.nameWidth, marginTop: f.nameTop - (f.pad - 4) - brandSize * 1.2,
      fontSize: nameSize, fontWeight: 700, color: p.text, lineHeight: 1.25,
      lineClamp: 2,
    }, CARD.name),
    h('div', {
      display: 'flex', marginTop: f.archetypeSize * 0.4, fontSize: f.archetypeSize,
      fontWeight: 700, color: p.accent, lineHeight: 1.2,
    }, CARD.archetype),
    h('div', {
      display: 'flex', fontSize: f.statSize * 0.9, color: p.muted, lineHeight: 1.2,
    }, CARD.description),
    h('div', {
      display: 'flex', flexDirection: 'column', width: f.statsWidth,
      marginTop: f.archetypeSize * 0.8, gap: f.barGap - rowHeight,
    }, CARD.stats.map(([label, value]) => h('div', {
      display: 'flex', flexDirection: 'column', width: f.statsWidth,
    }, [
      h('div', {
        display: 'flex', justifyContent: 'space-between', width: f.statsWidth,
        fontSize: f.statSize, color: p.text, lineHeight: 1.2, marginBottom: labelGap,
      }, [
        h('span', {}, label),
        h('span', { fontWeight: 700 }, String(value)),
      ]),
      h('div', {
        display: 'flex', width: f.statsWidth, height: barH, borderRadius: barH / 2,
        backgroundColor: p.track,
      }, [
        h('div', {
          width: Math.max(barH, (f.statsWidth * value) / 100), height: barH,
          borderRadius: barH / 2, backgroundColor: p.accent,
        }, ''),
      ]),
    ]))),
  ]);

  return h('div', {
    position: 'relative', display: 'flex', width: f.width, height: f.height,
    backgroundImage: `linear-gradient(135deg, ${p.from}, ${p.to})`, fontFamily: FAMILY,
  }, [column, await qrNode(CARD.url, f.qrX, f.qrY, f.qrSize)]);
}

async function renderPng(sizeName) {
  const f = FRAMES[sizeName];
  const svg = await satori(await card(sizeName), { width: f.width, height: f.height, fonts: FONTS });
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'original' },
    font: { loadSystemFonts: false },
  });
  return resvg.render().asPng();
}

function usage(message) {
  if (message) console.error(message);
  console.error('usage: node render.mjs serve <square|story|link>\n'
    + '       node render.mjs cold <square|story|link> <out.png>');
  process.exit(2);
}

const [mode, size, arg] = process.argv.slice(2);
if (!FRAMES[size]) usage(`unknown size: ${size}`);

if (mode === 'serve') {
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() !== 'render') usage(`unknown request: ${line}`);
    const t0 = performance.now();
    const png = await renderPng(size);
    const ms = performance.now() - t0;
    process.stdout.write(`${JSON.stringify({ ms, png_bytes: png.length })}\n`);
  }
} else if (mode === 'cold') {
  if (!arg) usage('missing out.png');
  writeFileSync(arg, await renderPng(size));
} else {
  usage(`unknown mode: ${mode}`);
}
