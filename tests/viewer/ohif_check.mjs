// Drives the real OHIF viewer (headless Debian chromium via playwright-core) and prints, as JSON,
// what the page shows for each study: every SR measurement OHIF made of our SR, whether its ruler
// is drawn on its image (the SVG the annotation tools render), the drawn end points in patient
// coordinates (canvasToWorld of the drawn lines), its label lines, the SEG's segments, console errors.
// usage: node ohif_check.mjs <viewer url> <artifacts dir> <study uid>:<name>[:seg] ...
//   ":seg" also loads the study's SEG into the viewport and reports its segments.
import { chromium } from './.node/node_modules/playwright-core/index.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, out, ...specs] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'ohif-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const result = { studies: {} };
let errors = [];

async function checkStudy(page, study, name, withSeg) {
  errors = [];
  const r = { measurements: [], segments: [], badge: null };
  await page.goto(`${base}/viewer?StudyInstanceUIDs=${study}`);
  const modalities = withSeg ? ['SR', 'SEG'] : ['SR'];
  await page.waitForFunction(mods => window.services && mods.every(mod =>
    window.services.displaySetService.getActiveDisplaySets().some(d => d.Modality === mod)), modalities, { timeout: 90000 });
  await page.waitForTimeout(1000);
  const skip = page.getByText('Skip all'); if (await skip.count()) await skip.first().click().catch(() => {});
  // the SR in the viewport, as a radiologist double-clicks its thumbnail
  await page.evaluate(() => {
    const s = window.services;
    const sr = s.displaySetService.getActiveDisplaySets().find(d => d.Modality === 'SR');
    s.viewportGridService.setDisplaySetsForViewport({ viewportId: s.viewportGridService.getActiveViewportId(),
      displaySetInstanceUIDs: [sr.displaySetInstanceUID] });
  });
  await page.waitForFunction(() => {
    const sr = window.services.displaySetService.getActiveDisplaySets().find(d => d.Modality === 'SR');
    return sr.isLoaded && sr.measurements && sr.measurements.every(m => m.loaded);
  }, null, { timeout: 60000 });
  await page.waitForTimeout(1500);
  const no = page.getByRole('button', { name: 'No' }); if (await no.count()) await no.first().click().catch(() => {});
  const srInfo = await page.evaluate(() => {
    const sr = window.services.displaySetService.getActiveDisplaySets().find(d => d.Modality === 'SR');
    return { isRehydratable: sr.isRehydratable, n: sr.measurements.length,
             items: sr.measurements.map(m => ({ trackingId: m.TrackingIdentifier, uid: m.TrackingUniqueIdentifier,
               graphicType: m.graphicType || (m.coords[0] && m.coords[0].GraphicType), nCoords: m.coords.length,
               sop: m.ReferencedSOPInstanceUID, imageId: m.imageId, labels: m.labels })) };
  });
  r.badge = { isRehydratable: srInfo.isRehydratable };
  for (const [k, m] of srInfo.items.entries()) {
    // go to the measurement's image in the SR viewport and read what is drawn there for it
    const drawn = await page.evaluate(async ({ m }) => {
      const s = window.services;
      const vp = s.cornerstoneViewportService.getCornerstoneViewport(s.viewportGridService.getActiveViewportId());
      const index = vp.getImageIds().indexOf(m.imageId);
      if (index < 0) return { index };
      await vp.setImageIdIndex(index);
      vp.render();
      const el = vp.element;
      const mine = () => [...el.querySelectorAll('svg [data-annotation-uid], svg [data-id]')].filter(n =>
        (n.getAttribute('data-annotation-uid') || n.getAttribute('data-id') || '').includes(m.uid));
      for (let t = 0; t < 40 && !mine().some(n => n.querySelector('text, tspan')); t++) await new Promise(r => setTimeout(r, 100));
      await new Promise(r => setTimeout(r, 200));
      const nodes = mine();
      // this measurement's lines: DICOMSRDisplayTool draws an annotation's lines as bare <line>s (no
      // attribute names the annotation), so take the <line>s drawn where the annotation's lines are
      // (cornerstoneTools' annotation state, in canvas pixels, within 1.5 px); the thin 2,3-dashed
      // line links the text box to its ruler and is left out
      const svg = el.querySelector('svg');
      const annotation = window.cornerstoneTools.annotation.state.getAnnotation(m.uid);
      const expected = Object.values((annotation && annotation.data.renderableData) || {}).flat()
        .filter(pts => pts.length === 2).map(pts => pts.map(p => vp.worldToCanvas(p)));
      const svgLines = [...svg.querySelectorAll('line')].filter(l => l.getAttribute('stroke-dasharray') !== '2,3');
      const near = (l, a, b) => Math.hypot(+l.getAttribute('x1') - a[0], +l.getAttribute('y1') - a[1]) < 1.5 &&
        Math.hypot(+l.getAttribute('x2') - b[0], +l.getAttribute('y2') - b[1]) < 1.5;
      const lines = expected.map(([a, b]) => svgLines.find(l => near(l, a, b) || near(l, b, a))).filter(Boolean);
      const canvasRect = vp.canvas.getBoundingClientRect();
      const svgRect = svg.getBoundingClientRect();
      const toWorld = (x, y) => vp.canvasToWorld([x + svgRect.left - canvasRect.left, y + svgRect.top - canvasRect.top]);
      const linePoints = lines.flatMap(l => [
        toWorld(+l.getAttribute('x1'), +l.getAttribute('y1')), toWorld(+l.getAttribute('x2'), +l.getAttribute('y2'))]);
      // the label as drawn: one <tspan> per line
      const tspans = [...new Set(nodes.flatMap(n => [...n.querySelectorAll('tspan')]))].map(t => t.textContent);
      return { index, currentImageId: vp.getCurrentImageId(), nLines: lines.length, nExpected: expected.length,
               worldPoints: linePoints,
               labelLines: tspans };
    }, { m });
    r.measurements.push({ ...m, ...drawn });
    await page.screenshot({ path: join(out, `${name}-sr-${String(k + 1).padStart(2, '0')}-${m.trackingId.replace(/\W+/g, '_')}.png`) });
  }
  // the text boxes of every label on each key image, to check that none lies over another
  r.textBoxes = await page.evaluate(async (items) => {
    const s = window.services;
    const vp = s.cornerstoneViewportService.getCornerstoneViewport(s.viewportGridService.getActiveViewportId());
    const out = {};
    for (const imageId of [...new Set(items.map(m => m.imageId))]) {
      await vp.setImageIdIndex(vp.getImageIds().indexOf(imageId));
      vp.render();
      await new Promise(r => setTimeout(r, 500));
      out[imageId] = [...vp.element.querySelectorAll('svg g[data-annotation-uid]')]
        .map(g => ({ uid: g.getAttribute('data-annotation-uid'), text: g.querySelector('text') }))
        .filter(x => x.text).map(x => { const b = x.text.getBoundingClientRect(); return { uid: x.uid, box: [b.left, b.top, b.width, b.height] }; });
    }
    return out;
  }, srInfo.items);
  r.notCompatibleTextShown = await page.getByText('not compatible with this application').count();
  if (withSeg) {
    // the SEG: load it the way the viewer's LOAD button does (hydrate into the segmentation service)
    await page.evaluate(() => {
      const s = window.services;
      const seg = s.displaySetService.getActiveDisplaySets().find(d => d.Modality === 'SEG');
      s.viewportGridService.setDisplaySetsForViewport({ viewportId: s.viewportGridService.getActiveViewportId(),
        displaySetInstanceUIDs: [seg.displaySetInstanceUID] });
    });
    const load = page.getByText('LOAD', { exact: true });
    await load.first().waitFor({ timeout: 20000 }).catch(() => {});
    if (await load.count()) await load.first().click().catch(() => {});
    await page.waitForFunction(() => window.services.segmentationService.getSegmentations().length > 0, null, { timeout: 60000 })
      .catch(() => {});
    await page.waitForTimeout(2000);
    r.segments = await page.evaluate(() => {
      const s = window.services.segmentationService;
      const segs = s.getSegmentations();
      if (!segs.length) return [];
      const vpId = window.services.viewportGridService.getActiveViewportId();
      const id = segs[0].segmentationId;
      return Object.values(segs[0].segments).filter(Boolean).map(seg => ({ index: seg.segmentIndex, label: seg.label,
        color: (s.getSegmentColor ? s.getSegmentColor(vpId, id, seg.segmentIndex) : null) }));
    });
    await page.screenshot({ path: join(out, `${name}-seg.png`) });
    // each segment on the image through its centre, shown and hidden: the pixels that differ are what the
    // viewer drew of it; canvasToWorld of the canvas's origin and unit steps maps them to patient mm
    r.segmentViews = [];
    for (const { index } of r.segments) {
      const view = await page.evaluate(async (index) => {
        const s = window.services;
        const vpId = s.viewportGridService.getActiveViewportId();
        const id = s.segmentationService.getSegmentations()[0].segmentationId;
        s.segmentationService.jumpToSegmentCenter(id, index, vpId, 0.9, false, 0);
        await new Promise(r => setTimeout(r, 800));
        const vp = s.cornerstoneViewportService.getCornerstoneViewport(vpId);
        vp.render();
        await new Promise(r => setTimeout(r, 300));
        const b = vp.canvas.getBoundingClientRect();
        return { index, imageId: vp.getCurrentImageId(), clip: { x: b.left, y: b.top, width: b.width, height: b.height },
                 origin: vp.canvasToWorld([0, 0]), right: vp.canvasToWorld([1, 0]), down: vp.canvasToWorld([0, 1]) };
      }, index);
      const stem = join(out, `${name}-seg-${String(index).padStart(2, '0')}`);
      await page.screenshot({ path: `${stem}.png`, clip: view.clip });
      const visible = async (isVisible) => page.evaluate(async ({ index, isVisible }) => {
        const s = window.services;
        const vpId = s.viewportGridService.getActiveViewportId();
        const id = s.segmentationService.getSegmentations()[0].segmentationId;
        s.segmentationService.setSegmentVisibility(vpId, id, index, isVisible);
        s.cornerstoneViewportService.getCornerstoneViewport(vpId).render();
        await new Promise(r => setTimeout(r, 500));
      }, { index, isVisible });
      await visible(false);
      await page.screenshot({ path: `${stem}-hidden.png`, clip: view.clip });
      await visible(true);
      r.segmentViews.push({ ...view, shown: `${stem}.png`, hidden: `${stem}-hidden.png` });
    }
  }
  r.errors = errors;
  return r;
}

try {
  const page = browser.pages()[0] || await browser.newPage();
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', e => errors.push('pageerror: ' + e.message));
  for (const spec of specs) {
    const [study, name, seg] = spec.split(':');
    const t0 = Date.now();
    try {
      result.studies[name] = { study, ...(await checkStudy(page, study, name, seg === 'seg')), seconds: (Date.now() - t0) / 1000 };
    } catch (e) {
      result.studies[name] = { study, fatal: String(e && e.stack || e), errors };
    }
  }
} catch (e) {
  result.fatal = String(e && e.stack || e);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
