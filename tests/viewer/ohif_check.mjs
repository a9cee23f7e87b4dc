// Drives the real OHIF viewer (headless Debian chromium via playwright-core) and prints, as JSON,
// what the page shows: every SR measurement OHIF made of our SR, whether its ruler is drawn on
// its image (the SVG the annotation tools render), the drawn end points in patient coordinates
// (canvasToWorld of the drawn line), its text box, the SEG's segments, console errors.
// usage: node ohif_check.mjs <viewer url> <study uid> <artifacts dir>
import { chromium } from './.node/node_modules/playwright-core/index.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, study, out] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'ohif-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const result = { errors: [], measurements: [], segments: [], badge: null };
try {
  const page = browser.pages()[0] || await browser.newPage();
  page.on('console', m => { if (m.type() === 'error') result.errors.push(m.text()); });
  page.on('pageerror', e => result.errors.push('pageerror: ' + e.message));
  await page.goto(`${base}/viewer?StudyInstanceUIDs=${study}`);
  await page.waitForFunction(() => window.services && window.services.displaySetService.getActiveDisplaySets()
    .some(d => d.Modality === 'SR') && window.services.displaySetService.getActiveDisplaySets().some(d => d.Modality === 'SEG'),
    null, { timeout: 90000 });
  await page.waitForTimeout(2000);
  // skip the onboarding tour if shown
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
  await page.waitForTimeout(3000);
  const no = page.getByRole('button', { name: 'No' }); if (await no.count()) await no.first().click().catch(() => {});
  const srInfo = await page.evaluate(() => {
    const sr = window.services.displaySetService.getActiveDisplaySets().find(d => d.Modality === 'SR');
    return { isRehydratable: sr.isRehydratable, n: sr.measurements.length,
             items: sr.measurements.map(m => ({ trackingId: m.TrackingIdentifier, uid: m.TrackingUniqueIdentifier,
               graphicType: m.graphicType, sop: m.ReferencedSOPInstanceUID, imageId: m.imageId, labels: m.labels })) };
  });
  result.badge = { isRehydratable: srInfo.isRehydratable };
  for (const [k, m] of srInfo.items.entries()) {
    // go to the measurement's image in the SR viewport and read what is drawn there
    const drawn = await page.evaluate(async ({ m }) => {
      const s = window.services;
      const vpId = s.viewportGridService.getActiveViewportId();
      const vp = s.cornerstoneViewportService.getCornerstoneViewport(vpId);
      const index = vp.getImageIds().indexOf(m.imageId);
      if (index < 0) return { index };
      await vp.setImageIdIndex(index);
      vp.render();
      await new Promise(r => setTimeout(r, 1500));
      const el = vp.element;
      const nodes = [...el.querySelectorAll('svg [data-annotation-uid], svg [data-id]')].filter(n =>
        (n.getAttribute('data-annotation-uid') || n.getAttribute('data-id') || '').includes(m.uid));
      // the rulers drawn on this image (DICOMSRDisplayTool draws them as bare <line>s; the thin
      // 2,3-dashed lines link a text box to its ruler and are left out)
      const svg = el.querySelector('svg');
      const lines = [...svg.querySelectorAll('line')].filter(l => l.getAttribute('stroke-dasharray') !== '2,3');
      const circles = [...svg.querySelectorAll('circle')];
      const texts = [...new Set(nodes.flatMap(n => [...n.querySelectorAll('text, tspan')].map(t => t.textContent)))];
      const canvasRect = vp.canvas.getBoundingClientRect();
      const svgRect = el.querySelector('svg').getBoundingClientRect();
      const toWorld = (x, y) => vp.canvasToWorld([x + svgRect.left - canvasRect.left, y + svgRect.top - canvasRect.top]);
      const linePoints = lines.flatMap(l => [
        toWorld(+l.getAttribute('x1'), +l.getAttribute('y1')), toWorld(+l.getAttribute('x2'), +l.getAttribute('y2'))]);
      const pointWorld = circles.slice(0, 1).map(c => toWorld(+c.getAttribute('cx'), +c.getAttribute('cy')));
      return { index, currentImageId: vp.getCurrentImageId(), nLines: lines.length, nCircles: circles.length,
               worldPoints: linePoints.length ? linePoints : pointWorld, texts };
    }, { m });
    result.measurements.push({ ...m, ...drawn });
    await page.screenshot({ path: join(out, `sr-${String(k + 1).padStart(2, '0')}-${m.trackingId.replace(/\W+/g, '_')}.png`) });
  }
  result.notCompatibleTextShown = await page.getByText('not compatible with this application').count();
  // the SEG: load it the way the viewer's LOAD button does (hydrate into the segmentation service)
  await page.evaluate(() => {
    const s = window.services;
    const seg = s.displaySetService.getActiveDisplaySets().find(d => d.Modality === 'SEG');
    s.viewportGridService.setDisplaySetsForViewport({ viewportId: s.viewportGridService.getActiveViewportId(),
      displaySetInstanceUIDs: [seg.displaySetInstanceUID] });
  });
  await page.waitForTimeout(8000);
  const load = page.getByText('LOAD', { exact: true }); if (await load.count()) await load.first().click().catch(() => {});
  await page.waitForFunction(() => window.services.segmentationService.getSegmentations().length > 0, null, { timeout: 60000 })
    .catch(() => {});
  await page.waitForTimeout(4000);
  result.segments = await page.evaluate(() => {
    const s = window.services.segmentationService;
    const segs = s.getSegmentations();
    if (!segs.length) return [];
    const vpId = window.services.viewportGridService.getActiveViewportId();
    const id = segs[0].segmentationId;
    return Object.values(segs[0].segments).filter(Boolean).map(seg => ({ index: seg.segmentIndex, label: seg.label,
      color: (s.getSegmentColor ? s.getSegmentColor(vpId, id, seg.segmentIndex) : null) }));
  });
  await page.screenshot({ path: join(out, 'seg.png') });
} catch (e) {
  result.fatal = String(e && e.stack || e);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
