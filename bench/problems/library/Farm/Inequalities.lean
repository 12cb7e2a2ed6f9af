import Mathlib

/-!
# Classical inequalities
-/

namespace Farm.Inequalities

/-- The arithmetic mean of two reals is at least their geometric mean:
`2ab ≤ a² + b²`. -/
theorem two_mul_le_add_sq (a b : ℝ) : 2 * a * b ≤ a ^ 2 + b ^ 2 := by
  nlinarith [sq_nonneg (a - b)]

/-- AM-GM for two nonnegative reals. -/
theorem am_gm_two {a b : ℝ} (ha : 0 ≤ a) (hb : 0 ≤ b) :
    Real.sqrt (a * b) ≤ (a + b) / 2 := by
  rw [show a * b = Real.sqrt a ^ 2 * Real.sqrt b ^ 2 by
    rw [Real.sq_sqrt ha, Real.sq_sqrt hb]]
  rw [← mul_pow, Real.sqrt_sq (by positivity)]
  nlinarith [sq_nonneg (Real.sqrt a - Real.sqrt b), Real.sq_sqrt ha, Real.sq_sqrt hb]

/-- Cauchy–Schwarz for two pairs of reals. -/
theorem cauchy_schwarz_two (a b c d : ℝ) :
    (a * c + b * d) ^ 2 ≤ (a ^ 2 + b ^ 2) * (c ^ 2 + d ^ 2) := by
  nlinarith [sq_nonneg (a * d - b * c)]

/-- Bernoulli's inequality for natural exponents. -/
theorem one_add_mul_le_pow {x : ℝ} (hx : -1 ≤ x) (n : ℕ) :
    1 + n * x ≤ (1 + x) ^ n :=
  one_add_mul_le_pow hx n

/-- The sum of a positive real and its inverse is at least two. -/
theorem add_inv_ge_two {x : ℝ} (hx : 0 < x) : 2 ≤ x + x⁻¹ := by
  have h : 0 < x := hx
  field_simp
  rw [le_div_iff₀ h]
  nlinarith [sq_nonneg (x - 1)]

end Farm.Inequalities
