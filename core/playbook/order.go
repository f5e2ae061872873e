package playbook

// StartOrder groups the stack's containers into waves: every container's
// dependencies are in earlier waves, and containers within a wave keep
// file order and may start in parallel. Stop in the reverse order. The
// stack must come from Parse or Load (which reject dependency cycles); if
// a cycle is present anyway, its containers form the last wave.
func (s *Stack) StartOrder() [][]*Container {
	level := map[*Container]int{}
	const inProgress = -1
	var depth func(c *Container) int
	depth = func(c *Container) int {
		switch l, ok := level[c]; {
		case ok && l == inProgress:
			return -1
		case ok:
			return l
		}
		level[c] = inProgress
		l := 0
		for _, dep := range c.DependsOn {
			t := s.Container(dep.Container)
			if t == nil || t == c {
				continue
			}
			dl := depth(t)
			if dl < 0 {
				level[c] = -1
				return -1
			}
			l = max(l, dl+1)
		}
		level[c] = l
		return l
	}
	var waves [][]*Container
	var cyclic []*Container
	for _, c := range s.Containers {
		l := depth(c)
		if l < 0 {
			cyclic = append(cyclic, c)
			continue
		}
		for len(waves) <= l {
			waves = append(waves, nil)
		}
	}
	for _, c := range s.Containers {
		if l := level[c]; l >= 0 {
			waves[l] = append(waves[l], c)
		}
	}
	if len(cyclic) > 0 {
		waves = append(waves, cyclic)
	}
	return waves
}
