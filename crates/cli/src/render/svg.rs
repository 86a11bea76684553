//! The fabric as a standalone SVG picture.
//!
//! Layout: one panel per NUMA node (one host) or per host (several hosts), each with
//! its CPU on top and its GPUs in a row; direct NVLinks as arcs below the GPUs, their
//! width growing with the lanes and labelled `NV#`; NVSwitches as chips on a fabric bar
//! at the bottom, with one edge per GPU carrying its switch lanes; NVLink-C2C / Fusion
//! as violet links to the CPU. GPU boxes take their island's colour; unhealthy GPUs and
//! down links are red. No fonts or scripts are embedded, so the file renders anywhere.

use std::collections::BTreeMap;
use std::fmt::Write;

use linkwise_core::{C2cFlavor, Endpoint, Gpu, GpuId, LinkKind, Topology};

use super::bytes;

const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
];
const FONT: &str = "font-family=\"Helvetica, Arial, sans-serif\"";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
struct Geo {
    w: f64,
    h: f64,
    gap: f64,
    font: f64,
}

#[derive(Clone, Copy)]
struct BoxPos {
    x: f64,
    y: f64,
}

/// One panel: its title, its CPU endpoint (one host only) and its GPUs.
struct Panel<'a> {
    title: String,
    cpu: Option<Endpoint>,
    gpus: Vec<&'a Gpu>,
}

/// Every position and size of the picture, computed once before drawing.
struct Layout<'a> {
    multi: bool,
    geo: Geo,
    panels: Vec<Panel<'a>>,
    per_row: usize,
    pad: f64,
    header: f64,
    cpu_h: f64,
    panel_w: f64,
    panel_h: f64,
    margin: f64,
    title_h: f64,
    has_switch: bool,
    bar_h: f64,
    bar_y: f64,
    legend_y: f64,
    width: f64,
    height: f64,
    /// Top-left corner of each GPU box.
    pos: BTreeMap<&'a GpuId, BoxPos>,
    /// Per CPU endpoint (its `Debug` text): left x, bottom y and width of its box.
    cpu_pos: BTreeMap<String, (f64, f64, f64)>,
}

/// Renders the picture.
pub fn render(topo: &Topology) -> String {
    let lay = layout(topo);
    let mut o = String::new();
    let (width, height) = (lay.width, lay.height);
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" {FONT}>"
    );
    let _ = writeln!(o, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    draw_title(&mut o, topo, &lay);
    draw_panels(&mut o, topo, &lay);
    draw_cpu_links(&mut o, topo, &lay);
    if lay.has_switch {
        draw_switch_fabric(&mut o, topo, &lay);
    }
    draw_direct_links(&mut o, topo, &lay);
    draw_gpus(&mut o, topo, &lay);
    draw_legend(&mut o, &lay);
    let _ = writeln!(o, "</svg>");
    o
}

/// The panels: one per host (several hosts) or per NUMA node (one host).
fn panels(topo: &Topology, multi: bool) -> Vec<Panel<'_>> {
    let mut panels = Vec::new();
    if multi {
        for h in &topo.hosts {
            let gpus: Vec<&Gpu> = topo.gpus.iter().filter(|g| g.host == h.name).collect();
            panels.push(Panel {
                title: h.name.clone(),
                cpu: None,
                gpus,
            });
        }
    } else {
        let mut by_numa: BTreeMap<Option<u32>, Vec<&Gpu>> = BTreeMap::new();
        for g in &topo.gpus {
            by_numa.entry(g.numa_node).or_default().push(g);
        }
        let host = topo.hosts.first();
        for (numa, gpus) in by_numa {
            let cpus = host
                .and_then(|h| h.numa_nodes.iter().find(|n| Some(n.id) == numa))
                .map(|n| format!(" · CPUs {}", n.cpus))
                .unwrap_or_default();
            let title = match numa {
                Some(n) => format!("NUMA node {n}{cpus}"),
                None => "NUMA node unknown".to_string(),
            };
            let hname = host.map(|h| h.name.clone()).unwrap_or_default();
            panels.push(Panel {
                title,
                cpu: Some(Endpoint::Cpu { host: hname, numa }),
                gpus,
            });
        }
    }
    panels
}

/// Computes sizes, panel placement and the position of every GPU and CPU box.
fn layout(topo: &Topology) -> Layout<'_> {
    let multi = topo.is_multi_host();
    let geo = if multi {
        Geo {
            w: 104.0,
            h: 58.0,
            gap: 14.0,
            font: 11.0,
        }
    } else {
        Geo {
            w: 150.0,
            h: 70.0,
            gap: 26.0,
            font: 12.0,
        }
    };
    let panels = panels(topo, multi);
    let per_row = if multi { 3 } else { panels.len().max(1) };
    let pad = 16.0;
    let header = 30.0;
    let cpu_h = if multi { 0.0 } else { 36.0 };
    let cpu_gap = if multi { 0.0 } else { 34.0 };
    let max_gpus = panels
        .iter()
        .map(|p| p.gpus.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let gpus_f = f64::from(u32::try_from(max_gpus).unwrap_or(1));
    let panel_w = pad * 2.0 + gpus_f * geo.w + (gpus_f - 1.0) * geo.gap;
    let panel_h = header + cpu_h + cpu_gap + geo.h + pad + 18.0;
    let margin = 24.0;
    let title_h = 64.0;
    let rows = panels.len().div_ceil(per_row).max(1);
    let has_direct = topo
        .links
        .iter()
        .any(|l| matches!(l.kind, LinkKind::Nvlink { .. }));
    let arc_room = if has_direct && !multi { 150.0 } else { 0.0 };
    let has_switch = !topo.switches.is_empty();
    let bar_h = if has_switch { 64.0 } else { 0.0 };
    let switch_room = if has_switch && !multi {
        70.0
    } else if has_switch {
        24.0
    } else {
        0.0
    };
    let per_row_f = f64::from(u32::try_from(per_row).unwrap_or(1));
    let rows_f = f64::from(u32::try_from(rows).unwrap_or(1));
    let width = margin * 2.0 + per_row_f * panel_w + (per_row_f - 1.0) * 24.0;
    let panels_bottom = title_h + rows_f * panel_h + (rows_f - 1.0) * 24.0;
    let bar_y = panels_bottom + arc_room + switch_room;
    let legend_y = bar_y + bar_h + 28.0;
    let height = legend_y + 60.0 + if topo.gpus.is_empty() { 40.0 } else { 0.0 };

    let mut pos: BTreeMap<&GpuId, BoxPos> = BTreeMap::new();
    let mut cpu_pos: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for (p, panel) in panels.iter().enumerate() {
        let (px, py) = panel_origin(p, per_row, margin, title_h, panel_w, panel_h);
        if let Some(cpu) = &panel.cpu {
            let cx = px + pad;
            let cy = py + header;
            let cw = panel_w - 2.0 * pad;
            cpu_pos.insert(format!("{cpu:?}"), (cx, cy + cpu_h, cw));
        }
        for (k, g) in panel.gpus.iter().enumerate() {
            let kf = f64::from(u32::try_from(k).unwrap_or(0));
            let x = px + pad + kf * (geo.w + geo.gap);
            let y = py + header + cpu_h + cpu_gap;
            pos.insert(&g.id, BoxPos { x, y });
        }
    }
    Layout {
        multi,
        geo,
        panels,
        per_row,
        pad,
        header,
        cpu_h,
        panel_w,
        panel_h,
        margin,
        title_h,
        has_switch,
        bar_h,
        bar_y,
        legend_y,
        width,
        height,
        pos,
        cpu_pos,
    }
}

/// Top-left corner of panel `p`.
fn panel_origin(
    p: usize,
    per_row: usize,
    margin: f64,
    title_h: f64,
    panel_w: f64,
    panel_h: f64,
) -> (f64, f64) {
    let col = f64::from(u32::try_from(p % per_row).unwrap_or(0));
    let row = f64::from(u32::try_from(p / per_row).unwrap_or(0));
    (
        margin + col * (panel_w + 24.0),
        title_h + row * (panel_h + 24.0),
    )
}

/// The title, the subtitle and, without GPUs, the "no GPU" line.
fn draw_title(o: &mut String, topo: &Topology, lay: &Layout<'_>) {
    let margin = lay.margin;
    let models: Vec<String> = {
        let mut m: Vec<String> = topo.gpus.iter().map(|g| g.model.clone()).collect();
        m.dedup();
        m
    };
    let nv_islands = topo.islands().iter().filter(|i| i.gpus.len() > 1).count();
    let host_desc = if lay.multi {
        format!("{} hosts", topo.hosts.len())
    } else {
        topo.hosts
            .first()
            .map(|h| {
                let arch = h.arch.map(|a| format!(" ({a})")).unwrap_or_default();
                format!("{}{arch}", h.name)
            })
            .unwrap_or_default()
    };
    let _ = writeln!(
        o,
        "<text x=\"{margin}\" y=\"30\" font-size=\"20\" font-weight=\"bold\" fill=\"#1d2733\">{}</text>",
        esc(&format!("linkwise · {host_desc}"))
    );
    let _ = writeln!(
        o,
        "<text x=\"{margin}\" y=\"50\" font-size=\"13\" fill=\"#56606b\">{}</text>",
        esc(&format!(
            "{} GPUs · {} · {} NVLink island{} · source {}",
            topo.gpus.len(),
            models.join(", "),
            nv_islands,
            if nv_islands == 1 { "" } else { "s" },
            topo.source
        ))
    );
    if topo.gpus.is_empty() {
        let _ = writeln!(
            o,
            "<text x=\"{margin}\" y=\"{:.0}\" font-size=\"14\" fill=\"#56606b\">No NVIDIA GPU found.</text>",
            lay.title_h + 20.0
        );
    }
}

/// The panel frames with their titles and CPU boxes.
fn draw_panels(o: &mut String, topo: &Topology, lay: &Layout<'_>) {
    let (pad, panel_w, panel_h, cpu_h) = (lay.pad, lay.panel_w, lay.panel_h, lay.cpu_h);
    for (p, panel) in lay.panels.iter().enumerate() {
        let (px, py) = panel_origin(p, lay.per_row, lay.margin, lay.title_h, panel_w, panel_h);
        let _ = writeln!(
            o,
            "<rect x=\"{px:.1}\" y=\"{py:.1}\" width=\"{panel_w:.1}\" height=\"{panel_h:.1}\" rx=\"10\" fill=\"#f7f8fa\" stroke=\"#c9ced6\"/>"
        );
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" font-weight=\"bold\" fill=\"#33404d\">{}</text>",
            px + pad,
            py + 20.0,
            esc(&panel.title)
        );
        if panel.cpu.is_some() {
            let cx = px + pad;
            let cy = py + lay.header;
            let cw = panel_w - 2.0 * pad;
            let _ = writeln!(
                o,
                "<rect x=\"{cx:.1}\" y=\"{cy:.1}\" width=\"{cw:.1}\" height=\"{cpu_h:.1}\" rx=\"6\" fill=\"#f1e9f7\" stroke=\"#9b6fb8\"/>"
            );
            let cpu_label = topo
                .hosts
                .first()
                .and_then(|h| h.cpu_model.clone())
                .unwrap_or_else(|| "CPU".to_string());
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#4a2d5e\">{}</text>",
                cx + cw / 2.0,
                cy + 22.0,
                esc(&format!("CPU · {cpu_label}"))
            );
        }
    }
}

/// PCIe attachment to the CPU (thin grey) and C2C / Fusion (violet), under the boxes.
fn draw_cpu_links(o: &mut String, topo: &Topology, lay: &Layout<'_>) {
    for g in &topo.gpus {
        let Some(b) = lay.pos.get(&g.id) else {
            continue;
        };
        let key = format!(
            "{:?}",
            Endpoint::Cpu {
                host: g.host.clone(),
                numa: g.numa_node
            }
        );
        if let Some((_, cy, _)) = lay.cpu_pos.get(&key) {
            let cx = b.x + lay.geo.w / 2.0;
            let c2c = topo.links.iter().find(|l| {
                matches!(l.kind, LinkKind::C2c { .. })
                    && (l.a == Endpoint::Gpu(g.id.clone()) || l.b == Endpoint::Gpu(g.id.clone()))
            });
            match c2c {
                Some(l) => {
                    let label = match l.kind {
                        LinkKind::C2c {
                            flavor: C2cFlavor::NvlinkFusion,
                            ..
                        } => "NVLink Fusion",
                        _ => "NVLink-C2C",
                    };
                    let _ = writeln!(
                        o,
                        "<line x1=\"{cx:.1}\" y1=\"{cy:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\" stroke=\"#8e44ad\" stroke-width=\"7\" stroke-linecap=\"round\"/>",
                        b.y
                    );
                    let _ = writeln!(
                        o,
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#6c3483\">{label}</text>",
                        cx + 7.0,
                        cy + 20.0
                    );
                }
                None => {
                    let _ = writeln!(
                        o,
                        "<line x1=\"{cx:.1}\" y1=\"{cy:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\" stroke=\"#9aa3ad\" stroke-width=\"1.5\" stroke-dasharray=\"3 3\"/>",
                        b.y
                    );
                }
            }
        }
    }
}

/// Switch fabric: edges from every GPU to the bar, then the bar with its chips.
fn draw_switch_fabric(o: &mut String, topo: &Topology, lay: &Layout<'_>) {
    draw_switch_edges(o, topo, lay);
    draw_switch_bar(o, topo, lay);
}

/// One edge per GPU carrying its switch lanes (a stub when there are several hosts).
fn draw_switch_edges(o: &mut String, topo: &Topology, lay: &Layout<'_>) {
    let (multi, bar_y) = (lay.multi, lay.bar_y);
    let mut lanes: BTreeMap<&GpuId, (u32, u32, Option<u32>)> = BTreeMap::new();
    for l in &topo.links {
        if let LinkKind::NvswitchPort {
            lanes: n,
            generation,
        } = l.kind
        {
            let g = match (&l.a, &l.b) {
                (Endpoint::Gpu(g), _) | (_, Endpoint::Gpu(g)) => g,
                _ => continue,
            };
            let e = lanes.entry(g).or_insert((0, 0, generation));
            if l.is_up() {
                e.0 += n;
            } else {
                e.1 += n;
            }
        }
    }
    for (g, (up, down, generation)) in &lanes {
        let Some(b) = lay.pos.get(g) else { continue };
        let x = b.x + lay.geo.w / 2.0;
        let y1 = b.y + lay.geo.h;
        let sw = 1.0 + f64::from((*up).min(18)) * 0.35;
        let (color, dash) = if *down > 0 {
            ("#c0392b", " stroke-dasharray=\"6 3\"")
        } else {
            ("#3c9a5f", "")
        };
        // Several hosts: a stub under each GPU instead of lines across other panels.
        let y2 = if multi { y1 + 12.0 } else { bar_y };
        let _ = writeln!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{y1:.1}\" x2=\"{x:.1}\" y2=\"{y2:.1}\" stroke=\"{color}\" stroke-width=\"{sw:.1}\" stroke-opacity=\"0.75\"{dash}/>"
        );
        if multi {
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"{color}\">{}</text>",
                x + 5.0,
                y1 + 11.0,
                esc(&format!("{up}× to fabric"))
            );
        }
        if !multi {
            let gen_txt = generation.map(|n| format!(" gen{n}")).unwrap_or_default();
            let txt = if *down > 0 {
                format!("{up}×{gen_txt}, {down} DOWN")
            } else {
                format!("{up}×{gen_txt}")
            };
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{color}\">{}</text>",
                x + 5.0,
                bar_y - 8.0,
                esc(&txt)
            );
        }
    }
}

/// The fabric bar with one chip per NVSwitch and its caption.
fn draw_switch_bar(o: &mut String, topo: &Topology, lay: &Layout<'_>) {
    let (bar_y, bar_h) = (lay.bar_y, lay.bar_h);
    let bx = lay.margin;
    let bw = lay.width - 2.0 * lay.margin;
    let _ = writeln!(
        o,
        "<rect x=\"{bx:.1}\" y=\"{bar_y:.1}\" width=\"{bw:.1}\" height=\"{bar_h:.1}\" rx=\"10\" fill=\"#e6f4ea\" stroke=\"#3c9a5f\"/>"
    );
    let n = topo.switches.len();
    let slot = (bw - 40.0) / f64::from(u32::try_from(n.max(1)).unwrap_or(1));
    let chip_w = (slot - 8.0).clamp(4.0, 140.0);
    for (k, s) in topo.switches.iter().enumerate() {
        let kf = f64::from(u32::try_from(k).unwrap_or(0));
        let x = bx + 20.0 + kf * slot + (slot - chip_w) / 2.0;
        if x + chip_w > bx + bw {
            break;
        }
        let _ = writeln!(
            o,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{chip_w:.1}\" height=\"22\" rx=\"4\" fill=\"#c7e8d0\" stroke=\"#2e7d4a\"/>",
            bar_y + 28.0
        );
        let label: String = if chip_w >= 6.0 * f64::from(u32::try_from(s.id.len()).unwrap_or(99)) {
            s.id.clone()
        } else {
            let digits: String =
                s.id.chars()
                    .rev()
                    .take_while(char::is_ascii_digit)
                    .collect();
            digits.chars().rev().collect()
        };
        if chip_w >= 16.0 {
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#1e5631\">{}</text>",
                x + chip_w / 2.0,
                bar_y + 43.0,
                esc(&label)
            );
        }
    }
    let clique = topo
        .gpus
        .iter()
        .find_map(|g| g.fabric.as_ref())
        .map(|f| format!(" · clique {}", f.clique()))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" font-weight=\"bold\" fill=\"#1e5631\">{}</text>",
        bx + 20.0,
        bar_y + 19.0,
        esc(&format!(
            "NVSwitch fabric · {n} chip{}{clique}",
            if n == 1 { "" } else { "s" }
        ))
    );
}

/// Direct NVLinks as arcs below the GPU row.
fn draw_direct_links(o: &mut String, topo: &Topology, lay: &Layout<'_>) {
    let pos = &lay.pos;
    let mut direct: BTreeMap<(&GpuId, &GpuId), (u32, u32)> = BTreeMap::new();
    for l in &topo.links {
        if let (LinkKind::Nvlink { lanes, .. }, Endpoint::Gpu(a), Endpoint::Gpu(b)) =
            (&l.kind, &l.a, &l.b)
        {
            let key = if a <= b { (a, b) } else { (b, a) };
            let e = direct.entry(key).or_insert((0, 0));
            if l.is_up() {
                e.0 += lanes;
            } else {
                e.1 += lanes;
            }
        }
    }
    let mut degree: BTreeMap<&GpuId, Vec<f64>> = BTreeMap::new();
    for (a, b) in direct.keys() {
        if let (Some(pa), Some(pb)) = (pos.get(a), pos.get(b)) {
            degree.entry(a).or_default().push(pb.x);
            degree.entry(b).or_default().push(pa.x);
        }
    }
    let offset = |g: &GpuId, peer_x: f64| -> f64 {
        let mut xs = degree.get(g).cloned().unwrap_or_default();
        xs.sort_by(f64::total_cmp);
        let k = xs.iter().position(|x| *x == peer_x).unwrap_or(0);
        let n = xs.len();
        (f64::from(u32::try_from(k).unwrap_or(0))
            - f64::from(u32::try_from(n).unwrap_or(1).saturating_sub(1)) / 2.0)
            * 9.0
    };
    for ((a, b), (up, down)) in &direct {
        let (Some(pa), Some(pb)) = (pos.get(a), pos.get(b)) else {
            continue;
        };
        let x1 = pa.x + lay.geo.w / 2.0 + offset(a, pb.x);
        let x2 = pb.x + lay.geo.w / 2.0 + offset(b, pa.x);
        let y1 = pa.y + lay.geo.h;
        let y2 = pb.y + lay.geo.h;
        draw_arc(o, (x1, y1), (x2, y2), *up, *down);
    }
}

/// One direct-NVLink arc from `(x1, y1)` to `(x2, y2)` with its `NV#` label.
fn draw_arc(o: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), up: u32, down: u32) {
    let dx = (x2 - x1).abs();
    let cy = y1.max(y2) + 30.0 + (dx * 0.3).min(250.0);
    let cx = (x1 + x2) / 2.0;
    let lanes = up + down;
    let w = 1.5 + f64::from(lanes.min(12)) * 1.6;
    let (color, dash) = if down > 0 {
        ("#c0392b", " stroke-dasharray=\"6 3\"")
    } else {
        ("#2a6f97", "")
    };
    let _ = writeln!(
        o,
        "<path d=\"M {x1:.1} {y1:.1} Q {cx:.1} {cy:.1} {x2:.1} {y2:.1}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{w:.1}\" stroke-opacity=\"0.8\"{dash}/>"
    );
    // Label at the curve's midpoint (t = 0.5).
    let mx = cx;
    let my = 0.25 * y1 + 0.5 * cy + 0.25 * y2;
    let label = if down > 0 {
        format!("NV{up} +{down} down")
    } else {
        format!("NV{up}")
    };
    let lw = 8.0 + 6.5 * f64::from(u32::try_from(label.len()).unwrap_or(4));
    let _ = writeln!(
        o,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{lw:.1}\" height=\"15\" rx=\"3\" fill=\"#ffffff\" stroke=\"{color}\" stroke-width=\"0.8\"/>",
        mx - lw / 2.0,
        my - 8.0
    );
    let _ = writeln!(
        o,
        "<text x=\"{mx:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"{color}\">{label}</text>",
        my + 3.5
    );
}

/// GPU boxes on top, coloured by NVLink island.
fn draw_gpus(o: &mut String, topo: &Topology, lay: &Layout<'_>) {
    let (multi, geo) = (lay.multi, &lay.geo);
    let islands = topo.islands();
    let island_of: BTreeMap<&GpuId, (usize, usize)> = islands
        .iter()
        .flat_map(|is| is.gpus.iter().map(move |g| (g, (is.id, is.gpus.len()))))
        .collect();
    let color_of = |id: &GpuId| -> &'static str {
        match island_of.get(id) {
            Some((i, n)) if *n > 1 => PALETTE[i % PALETTE.len()],
            _ => "#8a8f98",
        }
    };
    for g in &topo.gpus {
        let Some(b) = lay.pos.get(&g.id) else {
            continue;
        };
        let color = color_of(&g.id);
        let (fill, stroke) = if g.health.is_healthy() {
            ("#ffffff", color)
        } else {
            ("#fde0e0", "#c0392b")
        };
        let _ = writeln!(
            o,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"7\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2.5\"><title>{}</title></rect>",
            b.x,
            b.y,
            geo.w,
            geo.h,
            esc(&format!("{} {} ({})", g.label(multi), g.model, g.id))
        );
        let _ = writeln!(
            o,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"6\" rx=\"3\" fill=\"{color}\"/>",
            b.x + 2.0,
            b.y + 2.0,
            geo.w - 4.0
        );
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{:.0}\" font-weight=\"bold\" text-anchor=\"middle\" fill=\"#1d2733\">GPU{}</text>",
            b.x + geo.w / 2.0,
            b.y + 24.0,
            geo.font + 2.0,
            g.index
        );
        let short = g
            .model
            .trim_start_matches("NVIDIA ")
            .trim_start_matches("Tesla ");
        // About 0.55 em per character: 17 fit the small box, 22 the large one.
        let max_chars = if multi { 17 } else { 22 };
        let short: String = short.chars().take(max_chars).collect();
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{:.0}\" text-anchor=\"middle\" fill=\"#45505c\">{}</text>",
            b.x + geo.w / 2.0,
            b.y + 40.0,
            geo.font - 1.0,
            esc(&short)
        );
        let third = if !g.health.is_healthy() {
            "UNHEALTHY".to_string()
        } else {
            g.memory_bytes.map(bytes).unwrap_or_default()
        };
        let third_color = if g.health.is_healthy() {
            "#6b7580"
        } else {
            "#c0392b"
        };
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{:.0}\" text-anchor=\"middle\" fill=\"{third_color}\" font-weight=\"{}\">{}</text>",
            b.x + geo.w / 2.0,
            b.y + 55.0,
            geo.font - 1.0,
            if g.health.is_healthy() {
                "normal"
            } else {
                "bold"
            },
            esc(&third)
        );
    }
}

/// The legend at the bottom.
fn draw_legend(o: &mut String, lay: &Layout<'_>) {
    let margin = lay.margin;
    let mut lx = margin;
    let ly = lay.legend_y;
    for (color, width, dash, text) in [
        ("#2a6f97", 5.0, "", "NVLink GPU-GPU (width = lanes)"),
        ("#3c9a5f", 5.0, "", "NVLink to NVSwitch"),
        ("#8e44ad", 5.0, "", "NVLink-C2C / Fusion"),
        ("#9aa3ad", 1.5, " stroke-dasharray=\"3 3\"", "PCIe to CPU"),
        (
            "#c0392b",
            3.0,
            " stroke-dasharray=\"6 3\"",
            "down / unhealthy",
        ),
    ] {
        let _ = writeln!(
            o,
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"{width}\"{dash}/>",
            lx + 28.0
        );
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#45505c\">{}</text>",
            lx + 34.0,
            ly + 4.0,
            esc(text)
        );
        lx += 44.0 + 6.2 * f64::from(u32::try_from(text.len()).unwrap_or(10));
    }
    let _ = writeln!(
        o,
        "<text x=\"{margin:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#6b7580\">GPU colour = NVLink island (grey: no NVLink). Generated by linkwise.</text>",
        ly + 26.0
    );
}
