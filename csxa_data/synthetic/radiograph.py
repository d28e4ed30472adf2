"""Synthetic lateral cervical-spine radiographs with their 23 CSXA landmarks.

The patient faces left (anterior = smaller x).  Geometry is built in millimetres in a
canonical frame (x posterior, y caudal), then mapped to pixels by one similarity
transform, so every part scales with the image.  Spondylosis grows smoothly with
``severity``: narrowed discs (mostly C5-C6, C6-C7), osteophytes at the body corners,
loss of lordosis, endplate sclerosis and slightly lower bodies.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Nominal sizes (mm) of C3..C7 and T1, and of the discs C2/3 .. C7/T1.
_BODY_HEIGHT = (14.0, 13.8, 13.6, 13.8, 14.4, 15.5)
_BODY_DEPTH = (15.5, 16.0, 16.5, 17.0, 17.5, 18.5)
_DISC_HEIGHT = (4.6, 5.0, 5.4, 5.9, 6.0, 5.4)
_DISC_NARROWING = (0.35, 0.5, 0.7, 1.0, 0.9, 0.45)  # how strongly each disc degenerates
_SPINOUS_LENGTH = (22.0, 12.0, 14.0, 17.0, 22.0, 30.0, 30.0)  # C2..T1, from the laminar line
_OSTEO_WEIGHT = (0.5, 0.6, 0.8, 1.0, 1.0, 0.7)  # C2..C7


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.hypot(v[..., 0], v[..., 1])[..., None]


def _bulge(p0, p1, inward, sag, n=6) -> np.ndarray:
    """Points from p0 to p1 (both included) sagging by ``sag`` mm along ``inward`` mid-way."""
    tau = np.linspace(0.0, 1.0, n)[:, None]
    return p0 + (p1 - p0) * tau + inward * (sag * 4.0 * tau * (1.0 - tau))


def _ellipse(center, ax1, ax2, a, b, n=28, power=1.0) -> np.ndarray:
    """Polygon of an ellipse (power < 1 gives a squarer superellipse)."""
    ang = np.linspace(0.0, 2 * np.pi, n, endpoint=False)[:, None]
    co, si = np.cos(ang), np.sin(ang)
    if power != 1.0:
        co, si = np.sign(co) * np.abs(co) ** power, np.sign(si) * np.abs(si) ** power
    return center + ax1 * (a * co) + ax2 * (b * si)


def _round_corner(prev_pt, corner, next_pt, r, n=5):
    """Quadratic-Bezier rounding of a corner; returns (points, point on the rounded apex)."""
    c1 = corner + _unit(prev_pt - corner) * r
    c2 = corner + _unit(next_pt - corner) * r
    tau = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - tau) ** 2 * c1 + 2 * tau * (1 - tau) * corner + tau**2 * c2
    return pts, 0.25 * c1 + 0.5 * corner + 0.25 * c2


class _Curve:
    """Cervical column centre line with constant curvature (a circular arc)."""

    def __init__(self, phi_mid: float, k: float, s_mid: float, s_lo: float, s_hi: float):
        self.s = np.linspace(s_lo, s_hi, 400)
        self.phi = phi_mid + k * (self.s - s_mid)
        ds = self.s[1] - self.s[0]
        dx, dy = np.sin(self.phi), np.cos(self.phi)
        x = np.concatenate([[0.0], np.cumsum((dx[1:] + dx[:-1]) * 0.5 * ds)])
        y = np.concatenate([[0.0], np.cumsum((dy[1:] + dy[:-1]) * 0.5 * ds)])
        self.x = x - np.interp(0.0, self.s, x)
        self.y = y - np.interp(0.0, self.s, y)

    def frame(self, s: float):
        """Centre point, caudal tangent and anterior normal at arc length s."""
        phi = float(np.interp(s, self.s, self.phi))
        c = np.array([np.interp(s, self.s, self.x), np.interp(s, self.s, self.y)])
        return c, np.array([np.sin(phi), np.cos(phi)]), np.array([-np.cos(phi), np.sin(phi)])

    def offset(self, s: np.ndarray, off: np.ndarray) -> np.ndarray:
        """Points at distance ``off`` anterior (negative: posterior) of the centre line."""
        phi = np.interp(s, self.s, self.phi)
        x = np.interp(s, self.s, self.x) - np.cos(phi) * off
        y = np.interp(s, self.s, self.y) + np.sin(phi) * off
        return np.stack([x, y], axis=1)


class _Vertebra:
    """One vertebral body in the canonical frame (mm)."""

    def __init__(self, center, t, na, h_ant, h_post, depth):
        self.center, self.t, self.na, self.depth = center, t, na, depth
        self.h = 0.5 * (h_ant + h_post)
        self.tl = center + na * depth / 2 - t * h_ant / 2
        self.bl = center + na * depth / 2 + t * h_ant / 2
        self.tr = center - na * depth / 2 - t * h_post / 2
        self.br = center - na * depth / 2 + t * h_post / 2
        self.outline = None
        self.corners = {}


class _Pen:
    """Maps canonical mm to pixels and draws on the greyscale layers."""

    def __init__(self, size, scale, rot, shift, soft_factor):
        self.w, self.h = size
        c, s = np.cos(rot), np.sin(rot)
        self.m = scale * np.array([[c, -s], [s, c]])
        self.shift = np.asarray(shift, dtype=float)
        self.scale = scale
        self.sf = soft_factor
        self.bone = Image.new("L", size, 0)
        self.extra = Image.new("L", size, 0)
        soft_size = (max(8, self.w // soft_factor), max(8, self.h // soft_factor))
        self.soft = Image.new("L", soft_size, 0)
        self.draw = {
            "bone": ImageDraw.Draw(self.bone),
            "extra": ImageDraw.Draw(self.extra),
            "soft": ImageDraw.Draw(self.soft),
        }

    def px(self, pts: np.ndarray) -> np.ndarray:
        return np.asarray(pts, dtype=float) @ self.m.T + self.shift

    def _xy(self, layer, pts):
        p = self.px(pts)
        if layer == "soft":
            p = p / self.sf
        return p.ravel().tolist()

    def poly(self, layer, pts, fill):
        self.draw[layer].polygon(self._xy(layer, pts), fill=int(fill))

    def line(self, layer, pts, width_mm, fill, closed=False):
        pts = np.asarray(pts, dtype=float)
        if closed:
            pts = np.vstack([pts, pts[:1]])
        w = width_mm * self.scale / (self.sf if layer == "soft" else 1)
        self.draw[layer].line(self._xy(layer, pts), fill=int(fill), width=max(1, int(round(w))), joint="curve")


# ----------------------------------------------------------------------------- geometry


def _build_spine(rng: np.random.Generator, sev: float, size: float):
    """Place C2..T1 along the lordotic curve; returns (curve, vertebrae, C2 extras)."""
    h2 = rng.uniform(15.0, 18.0) * size * (1 - 0.05 * sev * rng.uniform())
    d2 = rng.uniform(14.5, 16.5) * size
    jitter = rng.uniform(0.92, 1.08, 6)
    heights = np.array(_BODY_HEIGHT) * size * jitter * (1 - 0.08 * sev * rng.uniform(0.3, 1.0, 6))
    depths = np.array(_BODY_DEPTH) * size * rng.uniform(0.94, 1.06, 6)
    wedge = rng.uniform(-0.04, 0.03, 6)
    narrowing = 1 - sev**1.2 * np.array(_DISC_NARROWING) * rng.uniform(0.6, 0.9, 6)
    discs = np.array(_DISC_HEIGHT) * size * rng.uniform(0.88, 1.12, 6) * narrowing

    # lordosis (C2-C7 angle) fades with severity and reverses slightly at the top end
    theta_h = np.clip(rng.normal(30.0, 7.0), 14.0, 45.0)
    theta = theta_h * (1 - 1.15 * sev**1.3) + rng.normal(0.0, 3.0)
    s_total = h2 + discs[:5].sum() + heights[:5].sum()
    k = np.deg2rad(theta) / s_total
    # keep every disc open at its narrow side (the bodies are rigid, the curve bends the discs)
    for i in range(6):
        h_next = heights[i]
        h_prev = h2 if i == 0 else heights[i - 1]
        half = 0.5 * max(depths[i], d2 if i == 0 else depths[i - 1])
        need = (half * abs(k) * 0.5 * (h_prev + h_next) + 1.0 + 0.5 * h_next * abs(wedge[i])) / (1 - half * abs(k))
        discs[i] = max(discs[i], need)
    phi_mid = np.deg2rad(rng.uniform(2.0, 12.0))
    curve = _Curve(phi_mid, k, 0.5 * s_total, -120.0 * size, s_total + 120.0 * size)

    verts = []
    s = 0.0
    c, t, na = curve.frame(s + h2 / 2)
    verts.append(_Vertebra(c, t, na, h2, h2, d2))
    s += h2
    for i in range(6):
        s += discs[i]
        c, t, na = curve.frame(s + heights[i] / 2)
        verts.append(_Vertebra(c, t, na, heights[i] * (1 + wedge[i]), heights[i] * (1 - wedge[i]), depths[i]))
        s += heights[i]
    return curve, verts, discs


def _body_outline(v: _Vertebra, rng, top_sag, bottom_sag):
    """Rounded, slightly concave outline of a C3..T1 body; sets v.outline and v.corners."""
    na, t = v.na, v.t
    r = 0.09 * v.depth
    edges = [
        _bulge(v.tl, v.tr, t, top_sag),  # superior endplate (dips caudally)
        _bulge(v.tr, v.br, -na, -0.5),  # posterior wall (slightly concave)
        _bulge(v.br, v.bl, -t, bottom_sag),  # inferior endplate (arches cranially)
        _bulge(v.bl, v.tl, -na, 0.8 * rng.uniform(0.5, 1.2)),  # anterior wall (concave)
    ]
    names = ["top left", "top right", "bottom right", "bottom left"]
    pts = []
    for i in range(4):
        prev_edge, edge = edges[i - 1], edges[i]
        rounded, apex = _round_corner(prev_edge[-2], edge[0], edge[1], r)
        v.corners[names[i]] = apex
        pts.append(rounded)
        pts.append(edge[1:-1])
    v.outline = np.vstack(pts)
    v.edges = edges


def _c2_outline(v: _Vertebra, rng):
    """C2: body plus the dens; sets outline, corners and the dens tip."""
    na, t = v.na, v.t
    r = 0.09 * v.depth
    psi = np.deg2rad(rng.uniform(4.0, 16.0))
    up = _unit(-t * np.cos(psi) - na * np.sin(psi))  # dens leans backwards
    side = np.array([-up[1], up[0]])  # anterior side of the dens
    if side @ na < 0:
        side = -side
    hd = rng.uniform(13.0, 16.0) * v.depth / 15.5
    wd = rng.uniform(8.5, 10.5) * v.depth / 15.5
    top_mid = v.center - t * v.h / 2 - na * rng.uniform(0.5, 2.0)
    base_a, base_p = top_mid + side * wd / 2, top_mid - side * wd / 2
    tip = top_mid + up * hd
    # dens: sides narrow slightly below a rounded tip
    dens_a = _bulge(base_a + up * 1.0, tip + side * wd * 0.42 - up * wd * 0.45, -side, -0.6, 5)
    ang = np.linspace(0.0, np.pi, 9)[:, None]
    cap = tip - up * wd * 0.45 + side * (wd * 0.42 * np.cos(ang)) + up * (wd * 0.45 * np.sin(ang))
    dens_p = _bulge(tip - side * wd * 0.42 - up * wd * 0.45, base_p + up * 1.0, side, -0.6, 5)
    ant_wall = _bulge(v.bl, v.tl + t * 2.0, -na, 1.0, 6)
    shoulder_a = _bulge(v.tl + t * 2.0, base_a + up * 1.0, up, 1.5, 5)
    shoulder_p = _bulge(base_p + up * 1.0, v.tr + t * 1.5, up, 1.2, 5)
    post_wall = _bulge(v.tr + t * 1.5, v.br, -na, -0.5, 6)
    bottom = _bulge(v.br, v.bl, -t, 0.6, 6)
    br_pts, br_apex = _round_corner(post_wall[-2], v.br, bottom[1], r)
    bl_pts, bl_apex = _round_corner(bottom[-2], v.bl, ant_wall[1], r)
    v.outline = np.vstack(
        [
            bl_pts,
            ant_wall[1:],
            shoulder_a[1:],
            dens_a[1:],
            cap[1:],
            dens_p[1:],
            shoulder_p[1:],
            post_wall[1:-1],
            br_pts,
            bottom[1:-1],
        ]
    )
    v.corners = {"bottom left": bl_apex, "bottom right": br_apex, "centroid": 0.25 * (v.tl + v.tr + v.bl + v.br)}
    v.edges = [None, None, bottom, None]
    v.dens = (top_mid, up, side, hd, wd, tip)


# ----------------------------------------------------------------------------- drawing


def _smooth(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _draw_neck(pen: _Pen, curve: _Curve, verts, rng, size):
    """Soft tissue of the neck, airway, shoulders (low-resolution soft layer)."""
    c2, c7 = verts[0], verts[5]
    s_c7 = float(np.hypot(*(c7.center - curve.frame(0.0)[0])))
    s = np.linspace(-110 * size, s_c7 + 110 * size, 48)
    rel = s / max(s_c7, 1.0)
    half = 0.5 * c2.depth
    ant = half + size * (
        rng.uniform(48, 60)
        + 6 * np.sin(2.5 * rel + rng.uniform(0, 6))
        + 160 * _smooth((0.12 - rel) / 0.4)
        + 90 * _smooth((rel - 1.15) / 0.6)
    )
    post = -(half + size * (rng.uniform(62, 74) + 18 * _smooth(-rel / 0.6) + 45 * _smooth((rel - 1.0) / 0.7)))
    front = curve.offset(s, ant)
    back = curve.offset(s, post)
    far = 500 * size
    pen.poly(
        "soft",
        np.vstack(
            [
                front[0] + [-far, -far],
                front,
                front[-1] + [-far, far],
                back[-1] + [far, far],
                back[::-1],
                back[0] + [far, -far],
            ]
        ),
        170,
    )
    # shoulders overlapping the cervicothoracic junction: stepped, blurred later
    sh = c7.center + c7.t * rng.uniform(35, 55) * size
    for i, val in enumerate((185, 200, 215, 228)):
        pen.poly(
            "soft",
            _ellipse(
                sh + [0, 4 * i * size],
                np.array([1.0, 0.0]),
                np.array([0.0, 1.0]),
                (170 - 12 * i) * size,
                (42 - 5 * i) * size,
            ),
            val,
        )
    # airway: pharynx in front of the prevertebral soft tissue, trachea lower down
    sa = np.linspace(-40 * size, s_c7 + 110 * size, 30)
    ra = sa / max(s_c7, 1.0)
    pvst = size * (3.5 + 2.5 * rng.uniform() + 10 * _smooth((ra - 0.5) / 0.25) + 8 * _smooth(-ra / 0.3))
    width = size * (
        rng.uniform(9, 14) + 4 * _smooth((ra - 0.6) / 0.3) - 4 * _smooth((ra - 0.35) / 0.1) * _smooth((0.55 - ra) / 0.1)
    )
    back_w = curve.offset(sa, half + pvst)
    front_w = curve.offset(sa, half + pvst + width)
    pen.poly("soft", np.vstack([back_w, front_w[::-1]]), rng.uniform(60, 90))


def _draw_skull(pen: _Pen, c2: _Vertebra, rng, size):
    """Skull base and occiput (top, posterior), mastoid, face, mandible and teeth (front)."""
    top_mid, up, side, hd, wd, tip = c2.dens
    basion = tip + np.array([-2.0, -rng.uniform(4.0, 7.0)]) * size
    opis = basion + np.array([rng.uniform(32, 38), -rng.uniform(0, 6)]) * size
    occ = opis + np.array(
        [[0, 0], [10, 2], [22, 1], [34, -6], [44, -18], [52, -34], [58, -58], [62, -100], [64, -200]], float
    ) * size * rng.uniform(0.9, 1.1)
    clivus_top = basion + np.array([-16.0, -28.0]) * size
    palate_y = basion[1] + rng.uniform(-2, 8) * size
    pns = np.array([basion[0] - rng.uniform(26, 34) * size, palate_y])
    far = 500 * size
    foramen = _bulge(basion, opis, np.array([0.0, -1.0]), 5.0 * size, 7)
    skull = np.vstack(
        [
            [pns[0] - far, palate_y],
            pns,
            pns + [3 * size, -20 * size],
            clivus_top,
            foramen[:-1],
            occ,
            occ[-1] + [far, -far],
            [pns[0] - far, occ[-1][1] - far],
        ]
    )
    pen.poly("extra", skull, 95)
    thick = np.linspace(6.0, 10.0, len(occ))[:, None] * size
    inner = occ + np.array([-0.8, -0.6]) * thick
    pen.poly("extra", np.vstack([occ, inner[::-1]]), 165)
    pen.line("extra", occ, 2.4, 235)
    pen.line("extra", inner, 1.4, 200)
    pen.line("extra", [clivus_top, basion], 2.4, 210)
    pen.line("extra", [pns, [pns[0] - far, palate_y - 0.05 * far]], 3.0, 205)
    mast = basion + np.array([rng.uniform(10, 18), -rng.uniform(4, 12)]) * size
    ax1, ax2 = np.array([0.4, 0.92]), np.array([0.92, -0.4])
    pen.poly("extra", _ellipse(mast, ax1, ax2, 11 * size, 7.5 * size), 150)
    for _ in range(6):
        cell = mast + (ax1 * rng.uniform(-6, 6) + ax2 * rng.uniform(-4, 4)) * size
        pen.poly("extra", _ellipse(cell, ax1, ax2, 1.8 * size, 1.5 * size, 10), 105)

    # mandible: ramus in front of C1/C2, angle near C2/C3, body leaving the frame anteriorly
    angle = np.array([c2.bl[0] - rng.uniform(2, 14) * size, c2.bl[1] + rng.uniform(-6, 8) * size])
    condyle = basion + np.array([-rng.uniform(12, 18), -rng.uniform(2, 8)]) * size
    drop = rng.uniform(0.2, 0.45)
    fwd = _unit(np.array([-1.0, drop]))
    up_b = np.array([-fwd[1], fwd[0]])
    if up_b[1] > 0:
        up_b = -up_b
    up_r = _unit(condyle - angle)
    ramus_h = float(np.hypot(*(condyle - angle)))
    ramus_w = rng.uniform(27, 33) * size
    body_h = rng.uniform(24, 30) * size
    post_b = _bulge(condyle, angle + up_r * 9 * size, fwd, 2.5 * size, 6)
    a_pts, _ = _round_corner(post_b[-2], angle, angle + fwd * 20 * size, 8 * size, 6)
    lower = np.vstack([angle + fwd * 12 * size, angle + fwd * far])
    upper = np.vstack(
        [
            angle + fwd * far + up_b * body_h,
            angle + fwd * ramus_w * 0.95 + up_b * body_h,
            angle + up_r * ramus_h * 0.92 + fwd * ramus_w * 0.95,
            angle + up_r * ramus_h * 0.72 + fwd * ramus_w * 0.5,
            condyle + fwd * 4 * size - up_r * 7 * size,
        ]
    )
    pen.poly("extra", np.vstack([post_b, a_pts, lower, upper]), 50)
    pen.line("extra", np.vstack([post_b, a_pts, lower]), 2.6, 210)
    pen.line("extra", upper[1:3], 1.6, 150)
    pen.poly("extra", _ellipse(condyle, np.array([1.0, 0]), np.array([0, 1.0]), 5 * size, 4 * size), 140)
    # molars on the mandible and the maxilla above them
    for i in range(8):
        base = angle + fwd * (ramus_w * 1.15 + i * 10.5 * size) + up_b * body_h
        for off, val in ((4.0, 200), (13.5, 190)):
            pen.poly("extra", _ellipse(base + up_b * off * size, fwd, up_b, 4.8 * size, 4.2 * size, 20, 0.6), val)
    return basion, opis


def _draw_c1(pen: _Pen, c2: _Vertebra, rng, size):
    """Atlas: anterior arch in front of the dens, lateral mass, posterior arch."""
    top_mid, up, side, hd, wd, tip = c2.dens
    lvl = top_mid + up * hd * rng.uniform(0.55, 0.7)
    ant_c = lvl + side * (wd / 2 + 2.0 * size + 4.0 * size)
    pen.poly("extra", _ellipse(ant_c, up, side, 5.5 * size, 3.8 * size), 150)
    pen.line("extra", _ellipse(ant_c, up, side, 5.5 * size, 3.8 * size), 1.2, 215, closed=True)
    mass = lvl - side * 4.0 * size
    pen.poly("extra", _ellipse(mass, up, side, 8.0 * size, 10.0 * size), 70)
    back = -side
    post_c = lvl + back * (wd / 2 + 28.0 * size) + up * 1.5 * size
    tilt = _unit(back + up * 0.12)
    perp = np.array([-tilt[1], tilt[0]])
    arch = _ellipse(post_c, tilt, perp, 14 * size, 3.4 * size, 24)
    tubercle = _ellipse(post_c + tilt * 11 * size, tilt, perp, 4.5 * size, 5.5 * size, 16)
    for shape in (arch, tubercle):
        pen.poly("extra", shape, 120)
    for shape in (arch, tubercle):
        pen.line("extra", shape, 1.1, 190, closed=True)


def _draw_posterior(pen: _Pen, v: _Vertebra, level: int, rng, size):
    """Pedicle, articular pillar, lamina and spinous process behind one body."""
    t, npost = v.t, -v.na
    base = v.center + npost * v.depth / 2
    h = v.h if level else 0.8 * v.h

    def p(u, w):
        return base + npost * (u * size) + t * w

    hs = h / 2
    pillar = np.array(
        [p(3, -hs - 2.0), p(8, -hs + 0.5), p(12.5, -hs + 4.5), p(13, hs + 3.5), p(8, hs + 1.5), p(3.5, hs - 2.5)]
    )
    pedicle = np.array([p(-1, -hs + 1.5), p(4, -hs + 0.5), p(4, -hs + 6.5), p(-1, -hs + 6.0)])
    lamina = np.array([p(10, hs - 4.0), p(17, hs - 5.0), p(18.5, hs + 0.5), p(11, hs + 2.5)])
    length = _SPINOUS_LENGTH[level] * size * rng.uniform(0.88, 1.12)
    droop = np.deg2rad(rng.uniform(15, 35) if level else rng.uniform(0, 12))
    dirn = _unit(npost * np.cos(droop) + t * np.sin(droop))
    perp = np.array([-dirn[1], dirn[0]])
    root = p(16, hs - 2.0)
    thick = (10.0 if level == 0 else 7.5) * size
    tipc = root + dirn * length
    spin = np.vstack(
        [
            root + perp * thick / 2,
            root + dirn * length * 0.5 + perp * thick * 0.2,
            tipc + perp * thick * 0.28,
            tipc + dirn * thick * 0.3 + perp * thick * 0.1,
            tipc + dirn * thick * 0.3 - perp * thick * 0.12,
            tipc - perp * thick * 0.3,
            root + dirn * length * 0.5 - perp * thick * 0.22,
            root - perp * thick / 2,
        ]
    )
    for shape, fill in ((spin, 90), (lamina, 85), (pillar, 105), (pedicle, 95)):
        pen.poly("bone", shape, fill)
    for shape, width, val in ((spin, 0.9, 175), (pillar, 1.0, 185), (lamina, 0.7, 140)):
        pen.line("bone", shape, width, val, closed=True)


def _osteophyte(pen: _Pen, v: _Vertebra, corner: str, length: float, size):
    """A bony beak growing outward from a body corner."""
    t, na = v.t, v.na
    c = v.corners[corner]
    vert = t if "bottom" in corner else -t
    horiz = na if "left" in corner else -na
    base_w = c - vert * (2.0 * size + 0.5 * length)  # on the wall
    base_e = c - horiz * (2.0 * size + 0.5 * length)  # on the endplate
    apex = c + _unit(vert * 0.75 + horiz * 0.66) * length
    mid = c + horiz * length * 0.55 + vert * length * 0.15
    shape = np.vstack([base_w, mid, apex, c + vert * length * 0.25, base_e])
    pen.poly("bone", shape, 150)
    pen.line("bone", shape[:4], 0.8, 215)


def _draw_spine(pen: _Pen, verts, sev, rng, size):
    """Posterior elements, bodies, cortex, endplate sclerosis and osteophytes."""
    for level in range(len(verts) - 1, -1, -1):
        _draw_posterior(pen, verts[level], level, rng, size)
    sclerosis = sev * rng.uniform(0.7, 1.0)
    for level, v in enumerate(verts):
        if level < 6:
            ost = sev**1.3 * _OSTEO_WEIGHT[level] * rng.uniform(0.4, 1.0, 4) * 9.0 * size
            ost[1::2] *= 0.4  # posterior corners grow less
            ost -= 0.6 * size  # nothing visible while mild
            names = (
                ("bottom left", "bottom right")
                if level == 0
                else ("top left", "bottom left", "top right", "bottom right")
            )
            order = [0, 2, 1, 3] if level else [0, 1]
            for name, j in zip(names, order):
                if ost[j] > 0.3 * size:
                    _osteophyte(pen, v, name, ost[j], size)
        pen.poly("bone", v.outline, 135)
        w_cortex = rng.uniform(0.9, 1.3)
        pen.line("bone", v.outline, w_cortex, 215, closed=True)
        # endplates: brighter, and thicker with sclerosis (more next to the worst discs)
        for e, disc in ((0, level - 1), (2, level)):
            edge = v.edges[e]
            if edge is None:
                continue
            wgt = _DISC_NARROWING[disc] if 0 <= disc < 6 else 0.3
            s_e = sclerosis * wgt
            inward = v.t if e == 0 else -v.t
            if s_e > 0.05:
                band = edge[1:-1] + inward * (0.5 + 1.6 * s_e) * size
                pen.line("bone", band, (0.8 + 3.5 * s_e) * size, 150 + 80 * s_e)
            pen.line("bone", edge[1:-1], w_cortex * (1.1 + 0.8 * s_e), 230 + 25 * s_e)


def _draw_hyoid(pen: _Pen, verts, rng, size):
    v = verts[2] if rng.uniform() < 0.5 else verts[1]
    c = v.tl + v.na * rng.uniform(26, 36) * size + v.t * rng.uniform(-4, 6) * size
    pen.poly(
        "extra", _ellipse(c, np.array([1.0, 0.25]) / 1.03, np.array([-0.25, 1.0]) / 1.03, 5.5 * size, 2.8 * size), 120
    )
    horn = np.vstack([c + [3 * size, -1 * size], c + [14 * size, -5 * size], c + [24 * size, -10 * size]])
    pen.line("extra", horn, 1.6, 95)


# ----------------------------------------------------------------------------- main entry


def _placement(rng, verts, width, height):
    """Scale, rotation and shift that put the spine inside the frame."""
    rot = np.deg2rad(rng.uniform(-4.0, 4.0))
    top = verts[0].dens[5]
    bottom = verts[5].corners["bottom right"]
    span = float(np.hypot(*(bottom - top)))
    frac = rng.uniform(0.45, 0.68)
    scale = min(frac * height / span, 0.9 * width / 160.0)
    c, s = np.cos(rot), np.sin(rot)
    m = scale * np.array([[c, -s], [s, c]])
    pts = np.array([v.corners[k] for v in verts[:6] for k in v.corners] + [top])
    pp = pts @ m.T
    lo, hi = pp.min(axis=0), pp.max(axis=0)
    tip = top @ m.T
    want_x = rng.uniform(0.44, 0.6) * width - 0.5 * (lo[0] + hi[0])
    want_y = rng.uniform(0.12, 0.2) * height - tip[1]
    mx, my = 0.04 * width + 2, 0.04 * height + 2
    shift = np.array(
        [np.clip(want_x, mx - lo[0], width - mx - hi[0]), np.clip(want_y, my - lo[1], height - my - hi[1])]
    )
    return scale, rot, shift


def draw_radiograph(
    rng: np.random.Generator, width: int, height: int, severity: float
) -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """Draw one synthetic lateral cervical-spine radiograph.

    Returns (grey image uint8 of shape (height, width), normal polarity: dark background,
    bright bone), and the 23 landmarks as {label: (x, y)} float pixel coordinates.
    """
    width, height = int(width), int(height)
    sev = float(np.clip(severity, 0.0, 1.0))
    size = rng.uniform(0.9, 1.1)
    curve, verts, _ = _build_spine(rng, sev, size)
    _c2_outline(verts[0], rng)
    for v in verts[1:]:
        _body_outline(v, rng, rng.uniform(0.2, 0.7), rng.uniform(0.3, 0.9))
    scale, rot, shift = _placement(rng, verts, width, height)
    while True:  # never let the spine exceed the frame (rare tiny or very wide images)
        pen = _Pen((width, height), scale, rot, shift, 4)
        pts = pen.px(np.array([v.corners[k] for v in verts[:6] for k in v.corners]))
        if pts.min() >= 1 and (pts[:, 0] <= width - 2).all() and (pts[:, 1] <= height - 2).all():
            break
        scale *= 0.9  # shrink about the frame centre and recentre the spine
        shift = 0.5 * np.array([width, height]) - (pts.mean(axis=0) - shift) * 0.9

    _draw_neck(pen, curve, verts, rng, size)
    _draw_skull(pen, verts[0], rng, size)
    _draw_c1(pen, verts[0], rng, size)
    _draw_hyoid(pen, verts, rng, size)
    _draw_spine(pen, verts, sev, rng, size)

    ppm = scale
    soft = pen.soft.filter(ImageFilter.GaussianBlur(max(0.6, 2.0 * ppm / 4)))
    soft = np.array(soft.resize((width, height), Image.BILINEAR), dtype=np.float32)
    bone_img = pen.bone.filter(ImageFilter.GaussianBlur(max(0.5, 0.38 * ppm)))
    extra_img = pen.extra.filter(ImageFilter.GaussianBlur(max(0.6, 0.55 * ppm)))
    bone = np.array(bone_img, dtype=np.float32)
    extra = np.asarray(extra_img, dtype=np.float32)

    # trabecular texture (about 1 mm grain) and film noise
    tw, th = max(4, int(width / ppm * 0.7)), max(4, int(height / ppm * 0.7))
    tex = Image.fromarray(rng.standard_normal((th, tw), dtype=np.float32), "F")
    tex = np.array(tex.resize((width, height), Image.BILINEAR), dtype=np.float32)
    nw, nh = max(4, width // 2), max(4, height // 2)
    grain = Image.fromarray(rng.standard_normal((nh, nw), dtype=np.float32), "F")
    grain = np.array(grain.resize((width, height), Image.BILINEAR), dtype=np.float32)

    k_soft = rng.uniform(0.22, 0.32) / 255
    k_bone = np.float32(rng.uniform(0.34, 0.44) / 255)
    k_extra = rng.uniform(0.30, 0.40) / 255
    tex_amp = rng.uniform(0.07, 0.13)
    bone *= k_bone
    bone += extra * np.float32(k_extra)
    tex *= np.float32(tex_amp)
    tex += np.float32(1.0)
    bone *= tex
    img = soft
    img *= np.float32(k_soft)
    img += bone
    gy, gx = rng.uniform(-0.1, 0.3), rng.uniform(-0.15, 0.15)
    ramp = (
        1.0
        + gy * (np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None])
        + gx * np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    )
    img *= ramp
    grain *= np.float32(rng.uniform(0.012, 0.03))
    grain += np.float32(rng.uniform(0.02, 0.07))
    img += grain

    lo, hi = rng.uniform(-0.02, 0.04), rng.uniform(0.8, 1.05)
    gamma = rng.uniform(0.8, 1.25)
    img *= np.float32(255.0)
    np.clip(img, 0, 255, out=img)
    u8 = img.astype(np.uint8)
    lut = np.clip((np.arange(256) / 255.0 - lo) / (hi - lo), 0, 1) ** gamma
    out = (lut * 255.0 + 0.5).astype(np.uint8)[u8]

    marks = {}
    c2 = verts[0]
    for label, key in (
        ("C2 centroid", "centroid"),
        ("C2 bottom left", "bottom left"),
        ("C2 bottom right", "bottom right"),
    ):
        x, y = pen.px(c2.corners[key])
        marks[label] = (float(x), float(y))
    for n, v in zip(range(3, 8), verts[1:6]):
        for corner in ("top left", "top right", "bottom left", "bottom right"):
            x, y = pen.px(v.corners[corner])
            marks[f"C{n} {corner}"] = (float(x), float(y))
    return out, marks
