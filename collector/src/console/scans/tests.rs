//! Scan Results: filters, orders and paging against a walk over every scan, and the CSV.

use super::export::*;
use super::*;
use rampart_report::Profile;

#[test]
fn csv_cells_are_quoted_and_neutralised() {
    assert_eq!(csv_cell("web-1"), "web-1");
    assert_eq!(csv_cell("a,b"), "\"a,b\"");
    assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
    assert_eq!(csv_cell("+1"), "'+1");
    assert_eq!(csv_cell("-1"), "'-1");
    assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
    assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    assert_eq!(csv_cell("\r=x"), "\"'\r=x\"");
    assert_eq!(csv_cell(" =HYPERLINK(1)"), "' =HYPERLINK(1)");
    assert_eq!(csv_cell("＝1+1"), "'＝1+1");
}

#[test]
fn filters_are_checked_and_name_the_field() {
    let q = |f: fn(&mut ListQuery)| {
        let mut q = ListQuery::default();
        f(&mut q);
        Filters::parse(&q)
    };
    assert_eq!(q(|_| {}).unwrap(), Filters::default());
    assert!(q(|q| q.status = Some("done".into()))
        .unwrap_err()
        .contains("status `done`"));
    assert!(q(|q| q.min_score = Some("101".into()))
        .unwrap_err()
        .contains("min_score"));
    assert!(q(|q| q.max_score = Some("x".into()))
        .unwrap_err()
        .contains("max_score"));
    assert!(q(|q| q.q = Some("x".repeat(257)))
        .unwrap_err()
        .contains("q is longer than 256"));
    assert!(q(|q| q.project = Some("p".repeat(256))).is_ok());
    assert!(q(|q| q.from = Some("2026-13-01".into()))
        .unwrap_err()
        .contains("from"));
    assert!(q(|q| {
        q.min_score = Some("80".into());
        q.max_score = Some("20".into())
    })
    .unwrap_err()
    .contains("above"));
    let f = q(|q| {
        q.from = Some("2026-12-05".into());
        q.to = Some("2026-12-05".into());
        q.blocked = Some("1".into());
        q.status = Some(" ".into());
    })
    .unwrap();
    assert!(f.blocked && f.status.is_none());
    // 2026-12-05T00:00:00Z = 1796428800000 ms; `to` includes the whole day.
    assert_eq!(f.from_ms, Some(1_796_428_800_000));
    assert_eq!(f.to_ms, Some(1_796_428_800_000 + 86_400_000));
    let c = f.cursor(Some("sc-9999999999999-x"));
    assert_eq!(c.before.as_deref(), Some("sc-1796515200000"));
    assert_eq!(c.after.as_deref(), Some("sc-1796428800000"));
}

fn app_with_scans(dir: &std::path::Path, n: usize) -> App {
    app_with(dir, n, |_, _| {})
}

/// An app whose store holds `n` scans made by `make` from pending ones.
fn app_with(dir: &std::path::Path, n: usize, make: fn(usize, &mut ScanRecord)) -> App {
    let store =
        std::sync::Arc::new(crate::store::sled_store::SledStore::open(&dir.join("db")).unwrap());
    for i in 0..n {
        let mut s = ScanRecord::pending(
            format!("sc-{i:013}-0"),
            "ag-1",
            None,
            "manual",
            Profile::default(),
            i as i64,
        );
        make(i, &mut s);
        crate::store::Store::put_scan(&*store, &s).unwrap();
    }
    let ca = crate::ca::Ca::open_or_create(&dir.join("ca")).unwrap();
    App::new(store, ca, crate::config::Config::default()).unwrap()
}

#[test]
fn a_walk_stops_when_its_reader_goes() {
    // The CSV export's reader going away (visit answers false) ends the walk at
    // once, however many scans are left: it kept reading the whole store.
    let d = tempfile::tempdir().unwrap();
    let app = app_with_scans(d.path(), 1200);
    let mut seen = 0;
    let w = walk(
        &app,
        &Filters::default(),
        None,
        usize::MAX,
        usize::MAX,
        &mut |_, _| {
            seen += 1;
            seen < 3
        },
    )
    .unwrap();
    assert_eq!(seen, 3);
    assert_eq!(w.next.as_deref(), Some("sc-0000000001197-0"));
    // A reader that stays gets every scan, over several store batches.
    let mut all = 0;
    let w = walk(
        &app,
        &Filters::default(),
        None,
        usize::MAX,
        usize::MAX,
        &mut |_, _| {
            all += 1;
            true
        },
    )
    .unwrap();
    assert_eq!((all, w.next), (1200, None));
}

/// Every scan a walk visits, in order, and how it ended.
fn walked(app: &App, q: fn(&mut ListQuery), budget: usize) -> (Vec<ScanRecord>, Walked) {
    let mut lq = ListQuery::default();
    q(&mut lq);
    let f = Filters::parse(&lq).unwrap();
    let mut seen = Vec::new();
    let w = walk(app, &f, None, usize::MAX, budget, &mut |s, _| {
        seen.push(s.clone());
        true
    })
    .unwrap();
    (seen, w)
}

/// Scan `i`: completed with score `i * 37 % 101` (ties: several scans share one),
/// in project `web` when `i` is a multiple of 3; every seventh still pending.
fn scored(i: usize, s: &mut ScanRecord) {
    if !i.is_multiple_of(7) {
        s.status = ScanStatus::Completed;
        s.score = Some((i * 37 % 101) as f64);
    }
    if i.is_multiple_of(3) {
        s.project = Some("web".into());
    }
}

#[test]
fn every_order_walks_the_whole_list_in_its_order() {
    // Over several store batches (500), with ties in score broken by scan ID.
    let d = tempfile::tempdir().unwrap();
    let app = app_with(d.path(), 1300, scored);
    let ids = |v: &[ScanRecord]| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    let (newest, _) = walked(&app, |_| {}, usize::MAX);
    let (mut oldest, _) = walked(&app, |q| q.sort = Some("oldest".into()), usize::MAX);
    assert_eq!(newest.len(), 1300);
    oldest.reverse();
    assert_eq!(ids(&oldest), ids(&newest));

    let key = |s: &ScanRecord| (s.score.unwrap() as i64, s.id.clone());
    let (low, _) = walked(&app, |q| q.sort = Some("score_low".into()), usize::MAX);
    let completed = (0..1300).filter(|i| i % 7 != 0).count();
    assert_eq!(low.len(), completed, "completed scans only");
    assert!(low.windows(2).all(|w| key(&w[0]) < key(&w[1])), "ascending");
    let (high, _) = walked(&app, |q| q.sort = Some("score_high".into()), usize::MAX);
    assert!(
        high.windows(2).all(|w| key(&w[0]) > key(&w[1])),
        "descending"
    );
    assert_eq!(high.len(), completed);

    // In a score order the store's filters and the dates still apply.
    let (web, _) = walked(
        &app,
        |q| {
            q.sort = Some("score_high".into());
            q.project = Some("web".into());
            q.min_score = Some("50".into());
        },
        usize::MAX,
    );
    let want = (0..1300)
        .filter(|i| i % 7 != 0 && i % 3 == 0 && i * 37 % 101 >= 50)
        .count();
    assert_eq!(web.len(), want);
    assert!(web.iter().all(|s| s.project.as_deref() == Some("web")));
    assert!(web.windows(2).all(|w| key(&w[0]) > key(&w[1])));

    // A page of a score order stops at its budget and says so.
    let (some, w) = walked(
        &app,
        |q| {
            q.sort = Some("score_low".into());
            q.project = Some("nowhere".into());
        },
        100,
    );
    assert!(some.is_empty() && w.cut_short && w.next.is_some());
}

#[test]
fn orders_and_their_cursors() {
    let q = |f: fn(&mut ListQuery)| {
        let mut q = ListQuery::default();
        f(&mut q);
        Filters::parse(&q)
    };
    assert_eq!(q(|_| {}).unwrap().order, Order::Newest);
    assert_eq!(
        q(|q| q.sort = Some("oldest".into())).unwrap().order,
        Order::Oldest
    );
    assert!(q(|q| q.sort = Some("host".into()))
        .unwrap_err()
        .contains("sort `host`"));
    assert!(q(|q| {
        q.sort = Some("score_low".into());
        q.status = Some("failed".into());
    })
    .unwrap_err()
    .contains("completed scans only"));
    // Oldest first: the page starts after the cursor, but never before `from`.
    let f = q(|q| {
        q.sort = Some("oldest".into());
        q.from = Some("2026-12-05".into());
        q.to = Some("2026-12-06".into());
    })
    .unwrap();
    let c = f.cursor(Some("sc-0000000000001-x"));
    assert!(c.oldest_first);
    assert_eq!(c.after.as_deref(), Some("sc-1796428800000"));
    let c = f.cursor(Some("sc-1796430000000-x"));
    assert_eq!(c.after.as_deref(), Some("sc-1796430000000-x"));
    assert_eq!(c.before.as_deref(), Some("sc-1796601600000"));
    // The heads: each leads to its order, the current one to its reverse; the
    // filters stay, the cursor goes.
    let lq = ListQuery {
        project: Some("web".into()),
        sort: Some("score_low".into()),
        after: Some("sc-1".into()),
        ..Default::default()
    };
    let h = sort_heads(&lq, Order::ScoreLow);
    assert_eq!(h.score_href, "/ui/scans?project=web&sort=score_high");
    assert_eq!(h.score_aria, "ascending");
    assert_eq!(h.date_href, "/ui/scans?project=web&sort=newest");
    assert_eq!(h.date_aria, "");
    let h = sort_heads(&ListQuery::default(), Order::Newest);
    assert_eq!(h.date_href, "/ui/scans?sort=oldest");
    assert_eq!(h.date_aria, "descending");
    assert_eq!(h.score_href, "/ui/scans?sort=score_low");
}

#[test]
fn an_export_past_its_deadline_ends_in_an_error() {
    let d = tempfile::tempdir().unwrap();
    let app = app_with_scans(d.path(), 3000);
    let f = Filters::default();
    let mut chunks: Vec<Result<String, std::io::Error>> = Vec::new();
    // In time: every scan, then the stream ends cleanly.
    export(
        &app,
        &f,
        std::time::Instant::now() + std::time::Duration::from_secs(600),
        &mut |c| {
            chunks.push(c);
            true
        },
    );
    assert!(chunks.iter().all(Result::is_ok));
    let csv: String = chunks.drain(..).map(Result::unwrap).collect();
    assert_eq!(csv.lines().count(), 3001);
    // Past the deadline: what was read, then an error that names it.
    export(&app, &f, std::time::Instant::now(), &mut |c| {
        chunks.push(c);
        true
    });
    let last = chunks.pop().unwrap().unwrap_err();
    assert!(last.to_string().contains("too long"), "{last}");
    assert!(chunks.iter().all(Result::is_ok));
    let partial: usize = chunks
        .iter()
        .map(|c| c.as_ref().unwrap().lines().count())
        .sum();
    assert!(partial < 3001, "cut short: {partial} lines");
}

#[test]
fn exports_are_bounded() {
    let slots: Vec<ExportSlot> = (0..EXPORTS_AT_ONCE)
        .map_while(|_| ExportSlot::take())
        .collect();
    assert_eq!(slots.len(), EXPORTS_AT_ONCE);
    assert!(ExportSlot::take().is_none(), "one more is refused");
    drop(slots);
    assert!(ExportSlot::take().is_some(), "given back when done");
}

#[test]
fn dates_are_days_since_the_epoch() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(2026, 12, 5), 20_792);
}
