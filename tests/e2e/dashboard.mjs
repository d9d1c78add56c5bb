// Drives a real headless Chromium through the dashboard of a running service that already holds
// the telemetry of one node (tests/integration/dashboard.rs sends it through the WebSocket).
//
//   node tests/e2e/dashboard.mjs <base url> <peer id> <node name> <best height> <artifacts dir>
//
// Fails (exit 1, with the reason) on any console error or uncaught exception in the page, or
// when something the user should see is not there. Saves screenshots at 1280 and 390 px.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, peerId, nodeName, bestHeight, artifacts] = process.argv.slice(2);
if (!artifacts) {
  console.error("usage: dashboard.mjs <base url> <peer id> <node name> <best height> <artifacts dir>");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const problems = [];
// While the test cuts the page off from the server on purpose, failed requests are expected.
let outage = false;
const step = (what) => console.log(`e2e: ${what}`);

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  for (const width of [1280, 390]) {
    const page = await browser.newPage({ viewport: { width, height: width > 600 ? 900 : 844 } });
    page.on("console", (m) => {
      if (m.type() === "error" && !outage) problems.push(`${width}px console error: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`${width}px uncaught: ${e.message}`));
    page.on("requestfailed", (r) => outage || problems.push(`${width}px request failed: ${r.url()} ${r.failure()?.errorText}`));
    // The fleet's polls: what it asks /nodes for.
    const fleetPolls = [];
    page.on("request", (r) => {
      const url = new URL(r.url());
      if (url.pathname === "/nodes" && !url.searchParams.has("peer_id")) fleetPolls.push(url);
    });

    // A plain GET / lands on the fleet page.
    const response = await page.goto(`${base}/`);
    if (!page.url().endsWith("/dashboard/")) throw new Error(`GET / went to ${page.url()}`);
    if (response.status() !== 200) throw new Error(`/dashboard/ answered ${response.status()}`);
    step(`${width}px: / redirected to ${page.url()}`);

    // The fleet table lists the node with its height.
    const row = page.locator(`#fleet tbody tr[data-peer="${peerId}"]`);
    await row.waitFor({ timeout: 15000 });
    await page.waitForFunction(
      ([peer, height]) => {
        const r = document.querySelector(`#fleet tbody tr[data-peer="${peer}"] td.best`);
        return r && r.textContent.replace(/[^0-9]/g, "").startsWith(height);
      },
      [peerId, bestHeight],
      { timeout: 15000 },
    );
    const rowText = await row.innerText();
    if (!rowText.includes(nodeName)) throw new Error(`the fleet row lacks the name: ${rowText}`);
    if (!/connected/.test(rowText)) throw new Error(`the node is not shown connected: ${rowText}`);
    const summary = await page.locator(".summary").innerText();
    if (!summary.includes("Chains") || !summary.includes("Versions")) throw new Error(`no counts: ${summary}`);
    step(`${width}px: fleet row: ${rowText.replace(/\s+/g, " ")}`);
    if (width === 1280) {
      // After the first whole fetch, the fleet asks only for what changed, with only the fields it shows.
      const deadline = Date.now() + 15000;
      while (!fleetPolls.some((u) => u.searchParams.has("since")) && Date.now() < deadline) await page.waitForTimeout(250);
      if (!fleetPolls.some((u) => u.searchParams.has("since"))) throw new Error("the fleet never polled with since=");
      if (!fleetPolls.every((u) => u.searchParams.get("fields")?.includes("best_height"))) throw new Error("a fleet poll asked for every field");
      if (!/connected/.test(await row.innerText())) throw new Error("the node vanished after an incremental poll");
      step(`${width}px: fleet polls: ${fleetPolls.length}, incremental after the first`);
    }

    // Filtering by text hides it, and clearing brings it back; sorting is a keyboard button.
    await page.fill("#q", "no-such-node-anywhere");
    await page.waitForFunction(() => document.querySelectorAll("#fleet tbody tr").length === 0);
    await page.fill("#q", "");
    await row.waitFor();
    await page.selectOption("#chain", "Testnet");
    await page.waitForFunction(() => document.querySelectorAll("#fleet tbody tr").length === 2);
    if ((await page.locator("#fleet tbody tr.behind").count()) !== 1) throw new Error("the laggard is not highlighted");
    await page.locator('th[data-key="best_height"] button').focus();
    await page.keyboard.press("Enter");
    await page.waitForSelector('th[data-key="best_height"][aria-sort="ascending"]');
    await page.screenshot({ path: join(artifacts, `fleet-${width}.png`), fullPage: true });

    // Open the node page from the fleet page, as a user would, with the keyboard.
    await row.locator("a").first().focus();
    await page.keyboard.press("Enter");
    await page.waitForURL(`**/dashboard/node/${encodeURIComponent(peerId)}`);
    await page.waitForSelector(".node-head h1", { timeout: 15000 });
    const title = await page.locator(".node-head h1").innerText();
    if (!title.includes(nodeName)) throw new Error(`node page title: ${title}`);

    // Charts are drawn with data: a line with several points in each.
    await page.waitForFunction(
      () => {
        const charts = [...document.querySelectorAll("figure.chart")];
        return charts.length >= 2 && charts.every((c) => Number(c.dataset.points) >= 2 && c.querySelector("path.line"));
      },
      null,
      { timeout: 15000 },
    );
    const points = await page.$$eval("figure.chart", (cs) => cs.map((c) => Number(c.dataset.points)));
    step(`${width}px: charts drawn with ${points.join(", ")} points`);

    // Message counts and recent messages, one of them expanded to its JSON.
    await page.waitForSelector(".kinds tbody tr");
    const kinds = await page.locator(".kinds tbody").innerText();
    if (!kinds.includes("block.import")) throw new Error(`counts per kind lack block.import: ${kinds}`);
    const first = page.locator("#messages li details").first();
    await first.waitFor();
    await first.locator("summary").click();
    const json = await first.locator("pre").innerText();
    if (!json.includes('"msg"')) throw new Error(`expanded message is not its JSON: ${json}`);
    // The kind filter narrows the list to that kind.
    await page.selectOption("#kind", "system.interval");
    await page.waitForFunction(() => {
      const kinds = [...document.querySelectorAll("#messages .kind")].map((k) => k.textContent);
      return kinds.length > 0 && kinds.every((k) => k === "system.interval");
    }, null, { timeout: 15000 });
    // Its propagation and hardware (the test waited for the analytics to be derived).
    await page.waitForFunction(() => /1 of [0-9]/.test(document.querySelector("#propagation tbody")?.textContent || ""), null, { timeout: 15000 });
    const hw = await page.locator("#node-hardware").innerText();
    if (!/Memory copy/.test(hw) || !/memory_memcpy_score/.test(hw)) throw new Error(`node hardware: ${hw}`);
    step(`${width}px: node page: counts per kind, messages, kind filter, propagation, hardware`);
    await page.screenshot({ path: join(artifacts, `node-${width}.png`), fullPage: true });

    // The benchmarks page draws too.
    await page.click('nav a[data-section="benchmarks"]');
    await page.waitForSelector("h1:text('Benchmarks')");
    await page.waitForSelector("table tbody tr a");
    if (width === 1280) await page.screenshot({ path: join(artifacts, `benchmarks-${width}.png`), fullPage: true });
    // One benchmark: the nodes connected in its window and the messages received in it.
    await page.locator("table tbody tr a").first().click();
    await page.waitForFunction(
      (name) => [...document.querySelectorAll("table tbody tr")].some((r) => r.textContent.includes(name)),
      nodeName,
      { timeout: 15000 },
    );
    if (!(await page.locator(".kinds tbody").innerText()).includes("system.interval")) throw new Error("no message counts in the benchmark's window");
    step(`${width}px: benchmarks and one benchmark's window`);

    // The chains page lists the node's chain; its page draws propagation, finality and
    // versions, and the hardware table holds the node, flagged below the reference.
    await page.click('nav a[data-section="chains"]');
    const chainRow = page.locator("#chains tbody tr[data-genesis]").first();
    await chainRow.waitFor({ timeout: 15000 });
    await chainRow.locator("a").first().click();
    await page.waitForURL("**/dashboard/chains/**");
    await page.waitForFunction(
      () => {
        const charts = [...document.querySelectorAll("#chain-charts figure.chart")];
        return charts.length === 3 && Number(charts[0].dataset.points) >= 2 && charts[0].querySelector("path.line");
      },
      null,
      { timeout: 15000 },
    );
    const hwTable = await page.locator("#hardware tbody").innerText();
    if (!hwTable.includes(peerId) || !hwTable.includes("memory_memcpy_score")) throw new Error(`chain hardware table: ${hwTable}`);
    const versionTable = await page.locator("#versions tbody").innerText();
    if (!versionTable.includes("1.2.3")) throw new Error(`chain versions: ${versionTable}`);
    await page.selectOption("#chain-window", "24h");
    await page.waitForFunction(() => document.querySelectorAll("#chain-charts figure.chart").length === 3, null, { timeout: 15000 });
    step(`${width}px: chains page and chain page: propagation, finality, versions, hardware`);
    await page.screenshot({ path: join(artifacts, `chain-${width}.png`), fullPage: true });

    // Cut off from the server, the page says so instead of freezing, and recovers.
    if (width === 1280) {
      await page.click('nav a[data-section="fleet"]');
      await page.waitForSelector("#fleet tbody tr");
      outage = true;
      const fleetRequests = /\/nodes(\?|$)/;
      await page.route(fleetRequests, (r) => r.abort());
      await page.waitForFunction(() => /unreachable/.test(document.getElementById("status").textContent), null, { timeout: 15000 });
      const row = await page.locator(`#fleet tbody tr[data-peer="${peerId}"]`).count();
      if (row !== 1) throw new Error("the last data vanished during the outage");
      step(`outage: ${await page.locator("#status").innerText()}`);
      await page.screenshot({ path: join(artifacts, "outage-1280.png") });
      await page.unroute(fleetRequests);
      await page.waitForFunction(() => /^Live/.test(document.getElementById("status").textContent), null, { timeout: 15000 });
      outage = false;
      step("outage: recovered");
    }

    // Nothing is wider than the window (no sideways scrolling of the page itself).
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) problems.push(`${width}px: the page is ${overflow}px wider than the window`);
    await page.close();
  }
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
step(`passed; screenshots in ${artifacts}`);
