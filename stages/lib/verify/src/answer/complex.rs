//! A minimal complex number, enough to evaluate expressions without domain errors.
//!
//! Evaluating over the complex numbers means `\sqrt{x-3}` at `x = 1` or `\ln(-2)` still has
//! a value (the principal branch), so two equivalent expressions agree at every sample point
//! instead of both turning into NaN. Points where a value is not finite are skipped.

use std::ops::{Add, Div, Mul, Neg, Sub};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct C {
    pub re: f64,
    pub im: f64,
}

impl C {
    pub const fn new(re: f64, im: f64) -> Self {
        C { re, im }
    }
    pub const fn real(re: f64) -> Self {
        C { re, im: 0.0 }
    }
    pub fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
    pub fn is_finite(self) -> bool {
        self.re.is_finite() && self.im.is_finite()
    }
    pub fn is_real(self) -> bool {
        self.im.abs() <= 1e-12 * self.re.abs().max(1.0)
    }
    pub fn exp(self) -> C {
        let r = self.re.exp();
        C::new(r * self.im.cos(), r * self.im.sin())
    }
    pub fn ln(self) -> C {
        C::new(self.abs().ln(), self.im.atan2(self.re))
    }
    pub fn sqrt(self) -> C {
        if self.im == 0.0 && self.re >= 0.0 {
            return C::real(self.re.sqrt());
        }
        let r = self.abs();
        let re = ((r + self.re) / 2.0).sqrt();
        let im = ((r - self.re) / 2.0).sqrt().copysign(self.im);
        C::new(re, im)
    }
    /// `self^e`; real bases with real exponents stay real where that is defined, so
    /// `(-8)^(1/3)` is `-2` as people write it rather than the principal complex root.
    pub fn pow(self, e: C) -> C {
        if self.is_real() && e.is_real() {
            let (b, x) = (self.re, e.re);
            if b >= 0.0 || x.fract() == 0.0 {
                return C::real(b.powf(x));
            }
            // Odd roots of negative numbers: x = p/q with q odd.
            let inv = 1.0 / x;
            if (inv - inv.round()).abs() < 1e-9 && (inv.round() as i64) % 2 != 0 {
                return C::real(-(-b).powf(x));
            }
        }
        if self.re == 0.0 && self.im == 0.0 {
            return if e.re > 0.0 { C::real(0.0) } else { C::real(f64::NAN) };
        }
        (e * self.ln()).exp()
    }
    pub fn sin(self) -> C {
        C::new(self.re.sin() * self.im.cosh(), self.re.cos() * self.im.sinh())
    }
    pub fn cos(self) -> C {
        C::new(self.re.cos() * self.im.cosh(), -self.re.sin() * self.im.sinh())
    }
    pub fn recip(self) -> C {
        C::real(1.0) / self
    }
}

impl Add for C {
    type Output = C;
    fn add(self, o: C) -> C {
        C::new(self.re + o.re, self.im + o.im)
    }
}
impl Sub for C {
    type Output = C;
    fn sub(self, o: C) -> C {
        C::new(self.re - o.re, self.im - o.im)
    }
}
impl Mul for C {
    type Output = C;
    fn mul(self, o: C) -> C {
        C::new(self.re * o.re - self.im * o.im, self.re * o.im + self.im * o.re)
    }
}
impl Div for C {
    type Output = C;
    fn div(self, o: C) -> C {
        if o.im == 0.0 {
            return C::new(self.re / o.re, self.im / o.re);
        }
        let d = o.re * o.re + o.im * o.im;
        C::new((self.re * o.re + self.im * o.im) / d, (self.im * o.re - self.re * o.im) / d)
    }
}
impl Neg for C {
    type Output = C;
    fn neg(self) -> C {
        C::new(-self.re, -self.im)
    }
}

/// Relative closeness used everywhere numbers are compared.
pub fn close(a: C, b: C, rel: f64) -> bool {
    let scale = a.abs().max(b.abs());
    (a - b).abs() <= rel * scale.max(1e-300) || (a - b).abs() <= 1e-12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_odd_root_of_negative() {
        let r = C::real(-8.0).pow(C::real(1.0 / 3.0));
        assert!((r.re + 2.0).abs() < 1e-12 && r.im == 0.0);
    }

    #[test]
    fn sqrt_of_negative_is_imaginary() {
        let r = C::real(-4.0).sqrt();
        assert!(r.re.abs() < 1e-12 && (r.im - 2.0).abs() < 1e-12);
    }

    #[test]
    fn closeness_is_relative() {
        assert!(close(C::real(1e9), C::real(1e9 + 1.0), 1e-6));
        assert!(!close(C::real(1.0), C::real(1.001), 1e-6));
    }
}
