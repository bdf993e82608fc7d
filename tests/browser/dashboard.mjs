// Drives the admin dashboard as a person would, in headless Chromium: signs in with the token,
// watches a running job's progress bar advance on the overview, opens that job's page, then
// opens a failed job from the failed list, clicks Retry and waits until it has run, requeues a
// dead letter, pauses and resumes a queue, and pauses a job definition. Saves a screenshot of
// each page.
//
// Usage: node dashboard.mjs <admin url> <token> <screenshot dir>
import { chromium } from "playwright-core";

const [url, token, outDir] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on("pageerror", (e) => console.log("page error: " + e.message));

  await page.goto(url + "/");
  await page.fill("#token", token);
  await page.click("#login button");

  // The overview's running table shows the job, and its bar advances without a reload.
  await page.waitForSelector("#running tbody tr[data-id] .bar > i", { timeout: 15000 });
  const width = () => page.$eval("#running .bar > i", (el) => parseFloat(el.style.width));
  const first = await width();
  await page.waitForFunction(
    (w) => {
      const el = document.querySelector("#running .bar > i");
      return el && parseFloat(el.style.width) >= w + 10;
    },
    first,
    { timeout: 15000 },
  );
  console.log(`overview progress ${first}% -> ${await width()}%`);
  const counts = await page.$$eval("tr[data-name] td:first-child", (tds) => tds.map((td) => td.textContent));
  console.log("definitions: " + counts.join(","));
  console.log("waiting: publish " + (await page.$eval('tr[data-name="publish"] td:nth-child(2)', (td) => td.textContent)));
  const queues = await page.$$eval("#queues tbody tr td", (tds) => tds.map((td) => td.textContent));
  console.log("queues: " + queues.join(","));
  await page.screenshot({ path: `${outDir}/overview.png`, fullPage: true });

  // The running job's page: its progress bar and its timeline, which grows live.
  await page.click("#running tbody tr[data-id]");
  await page.waitForSelector("#progress .bar");
  // Progress counted in items, and the estimate of when it ends.
  await page.waitForFunction(() => /done by about/.test(document.querySelector("#eta")?.textContent || ""), null, { timeout: 15000 });
  console.log("progress: " + (await page.$eval("#progress .muted", (el) => el.textContent)).replace(/[0-9,]+ of/, "N of"));
  console.log("eta: " + (await page.$eval("#eta", (el) => el.textContent)).replace(/^· /, "").replace(/about .*/, "about ..."));
  const before = await page.$$eval("#events li", (lis) => lis.length);
  await page.waitForFunction((n) => document.querySelectorAll("#events li").length > n, before, { timeout: 15000 });
  console.log(`timeline ${before} -> ${await page.$$eval("#events li", (lis) => lis.length)} events`);
  await page.screenshot({ path: `${outDir}/running-job.png`, fullPage: true });

  // The waiting job, from its definition's row: what it runs after.
  await page.click('nav a[data-nav="overview"]');
  await page.click('tr[data-name="publish"]');
  await page.waitForSelector("#jobs tbody tr[data-id]");
  await page.click("#jobs tbody tr[data-id]");
  await page.waitForSelector("h2 .state.s-waiting");
  const after = await page.$eval("#after", (el) => el.textContent);
  console.log(`waiting job: ${await page.$eval("h2 .state", (el) => el.textContent)}, runs after ${after}`);
  await page.screenshot({ path: `${outDir}/waiting-job.png`, fullPage: true });

  // A failed job, from the failed list: Retry, and it runs to completion.
  await page.click('nav a[data-nav="failed"]');
  await page.waitForSelector("#jobs tbody tr[data-id]");
  await page.click("#jobs tbody tr[data-id]");
  await page.waitForSelector("h2 .state.s-failed");
  await page.click("#retry:not([disabled])");
  await page.waitForSelector("h2 .state.s-completed", { timeout: 15000 });
  const kinds = await page.$$eval("#events li .k", (ks) => ks.map((k) => k.textContent));
  console.log("retried job events: " + kinds.join(","));
  await page.screenshot({ path: `${outDir}/job.png`, fullPage: true });

  // A queue's page from the overview: its dead letter, requeued with a click.
  await page.click('nav a[data-nav="overview"]');
  await page.click('#queues tr[data-queue="emails"]');
  await page.waitForSelector("#dead tr[data-msg]");
  const deadBefore = await page.$$eval("#dead tr[data-msg]", (trs) => trs.length);
  await page.screenshot({ path: `${outDir}/queue.png`, fullPage: true });
  await page.click('#dead tr[data-msg] button[data-act="requeue"]');
  await page.waitForFunction(() => !document.querySelector("#dead tr[data-msg]"), null, { timeout: 15000 });
  const ready = await page.$eval(".cards .card .v", (el) => el.textContent);
  console.log(`queue page: dead ${deadBefore} -> 0, ready ${ready}`);

  // Pause the queue from its page, then resume it.
  await page.click('button[data-flow="queues"][data-op="pause"]');
  await page.waitForSelector(".actions .s-paused");
  await page.screenshot({ path: `${outDir}/queue-paused.png`, fullPage: true });
  await page.click('button[data-flow="queues"][data-op="resume"]');
  await page.waitForSelector('button[data-flow="queues"][data-op="pause"]');
  console.log("queue paused and resumed: " + !(await page.$(".actions .s-paused")));

  // Pause a job definition from the overview: it is marked, and stays paused.
  await page.click('nav a[data-nav="overview"]');
  await page.click('button[data-flow="definitions"][data-target="mail"][data-op="pause"]');
  await page.waitForSelector('tr[data-name="mail"] .s-paused');
  const marked = await page.$eval('tr[data-name="mail"] td:first-child', (td) => td.textContent);
  console.log("paused definition: " + marked);
  await page.screenshot({ path: `${outDir}/definition-paused.png`, fullPage: true });
  console.log("OK");
} finally {
  await browser.close();
}
